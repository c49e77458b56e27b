"""Fault injection: what a kill -9, a second writer, a damaged store or a full disk must not break.

Kills are real (SIGKILL to a `driftlab` process); the process is slowed at one spot by a wrapper around the CLI
(`_SLOW`) so that the kill lands mid-run. Everything runs on the tiny random Qwen3 of conftest.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import yaml
from typer.testing import CliRunner

from driftlab.cli import app
from tests.conftest import tiny_study_config

# The CLI with one function slowed down: `python -c _SLOW <module> <attr> <seconds> <driftlab args...>`.
_SLOW = """
import sys, time, importlib
module, attr, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
owner_path, _, name = attr.rpartition(".")
owner = importlib.import_module(module)
for part in owner_path.split(".") if owner_path else []:
    owner = getattr(owner, part)
original = getattr(owner, name)
def slowed(*args, **kwargs):
    time.sleep(seconds)
    return original(*args, **kwargs)
setattr(owner, name, slowed)
sys.argv = ["driftlab"] + sys.argv[4:]
from driftlab.cli import app
app()
"""


# A reward with a signal on the random model (it is never right): the completion's length. Registered in the test
# process (fixture) and, as this prelude, in a spawned one.
_LENGTH_REWARD = """
from driftlab.train.rewards import REWARDS, Reward
REWARDS.register(Reward(name="_length", summary="test", make=lambda suite: lambda text, item: len(text) / 40))
"""


@pytest.fixture
def length_reward():
    exec(_LENGTH_REWARD, {})
    yield
    from driftlab.train.rewards import REWARDS

    REWARDS._entries.pop("_length", None)


def _config(tmp_path, tiny_model_dir, train: dict | None = None, **eval_over) -> str:
    cfg = tiny_study_config(tmp_path, tiny_model_dir)
    cfg["train"].update({"max_steps": 8, "save_steps": 2, "cache": False, "report_to": [], **(train or {})})
    cfg["data"]["target"].update(size=24, extraction="lenient")
    cfg["data"]["heldout"] = [{"name": "capitals", "source": "jsonl", "path": "capitals.jsonl", "mode": "loglik",
                               "size": 10}]
    cfg["eval"].update(batch_size=4, **eval_over)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _cli(*args) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _spawn(tmp_path, slow: tuple[str, str, float], *args, prelude: str = "") -> subprocess.Popen:
    env = {**os.environ, "DRIFTLAB_HOME": str(tmp_path / "home")}
    return subprocess.Popen([sys.executable, "-c", prelude + _SLOW, *map(str, slow), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 120.0) -> None:
    """SIGKILL `proc` as soon as ready() holds; fail if it ends first."""
    end = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"the process ended before the kill:\n{proc.stdout.read()}"
        assert time.monotonic() < end, "the kill point was never reached"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _log_steps(run) -> list[int]:
    path = run / "train_log.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if '"loss"' in line]


def _losses(run) -> dict[int, float]:
    rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def test_kill_9_at_a_random_training_step_then_resume(tmp_path, tiny_model_dir):
    cfg = _config(tmp_path, tiny_model_dir)
    _cli("train", "-c", cfg, "--out", str(tmp_path / "ref"))
    kill_after = random.Random().randint(3, 7)  # logged steps before the kill; in the message of any failure
    run = tmp_path / "run"
    proc = _spawn(tmp_path, ("driftlab.train.callbacks", "JsonlLogCallback.on_log", 0.4),
                  "train", "-c", cfg, "--out", run)
    _kill_when(proc, lambda: len(_log_steps(run)) >= kill_after)
    assert not (run / "adapter").exists()
    _cli("train", "--resume", str(run))
    assert _log_steps(run) == list(range(1, 9)), kill_after  # every step once, none twice
    assert _losses(run) == _losses(tmp_path / "ref"), kill_after  # every step's loss, exactly
    ref, resumed = (json.loads((d / "train.json").read_text()) for d in (tmp_path / "ref", run))
    assert resumed["resumed"] and resumed["train_loss"] == pytest.approx(ref["train_loss"], rel=1e-6), kill_after
    assert (run / "adapter/adapter_model.safetensors").read_bytes() == \
        (tmp_path / "ref/adapter/adapter_model.safetensors").read_bytes(), kill_after


def test_kill_9_during_grpo_then_resume_ends_at_the_same_reward(tmp_path, tiny_model_dir, length_reward):
    cfg = _config(tmp_path, tiny_model_dir, train={
        "objective": "grpo", "max_steps": 6, "learning_rate": 5e-3, "warmup_ratio": 0.0,
        "grpo": {"group": 4, "prompts_per_step": 2, "max_completion_length": 8, "rewards": [{"name": "_length"}]}})
    _cli("train", "-c", cfg, "--out", str(tmp_path / "ref"))
    kill_after = random.Random().randint(3, 5)
    run = tmp_path / "run"
    proc = _spawn(tmp_path, ("driftlab.train.callbacks", "JsonlLogCallback.on_log", 0.4),
                  "train", "-c", cfg, "--out", run, prelude=_LENGTH_REWARD)
    _kill_when(proc, lambda: len(_log_steps(run)) >= kill_after)
    _cli("train", "--resume", str(run))
    assert _log_steps(run) == list(range(1, 7)), kill_after
    rewards = [{r["step"]: r["reward"] for r in map(json.loads, (d / "train_log.jsonl").read_text().splitlines())
                if "reward" in r} for d in (tmp_path / "ref", run)]
    assert rewards[1] == pytest.approx(rewards[0], rel=0.01), (kill_after, rewards)  # every step, the last included
    assert max(rewards[0].values()) - min(rewards[0].values()) > 0.02, rewards  # it moved: the check is not 0 == 0


def _replies(out) -> dict:
    replies = {}
    for path in sorted(out.glob("*.jsonl")):
        for r in map(json.loads, path.read_text().splitlines()):
            replies[(path.stem, r["id"])] = (r["output"], r.get("loglik"))
    return replies


def _stored(store) -> int:
    if not store.exists():
        return 0
    try:
        with sqlite3.connect(store, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:  # the table is not there yet
        return 0


def test_kill_9_mid_eval_then_the_rerun_computes_only_what_is_missing(tmp_path, tiny_model_dir):
    cfg = _config(tmp_path, tiny_model_dir)
    store = tmp_path / "results.sqlite"
    fresh = _replies_of(cfg, tmp_path / "fresh", "--no-cache")
    proc = _spawn(tmp_path, ("driftlab.eval.hf_backend", "HFBackend._decode_batch", 0.3),
                  "eval", "-c", cfg, "--out", tmp_path / "killed")
    _kill_when(proc, lambda: _stored(store) >= 8)  # two chunks of the 24 generated items stored
    kept = _stored(store)
    assert 8 <= kept < 24
    output = _cli("eval", "-c", cfg, "--out", str(tmp_path / "rerun"))
    assert f": {kept} results from the results store, {24 + 10 - kept} computed" in output
    assert _replies(tmp_path / "rerun") == fresh
    assert _stored(store) == 24 + 10  # generated items + log-likelihood items, each once


def _replies_of(cfg, out, *extra) -> dict:
    _cli("eval", "-c", cfg, "--out", str(out), *extra)
    return _replies(out)


def test_concurrent_evaluations_on_one_store_lose_and_duplicate_nothing(tmp_path, tiny_model_dir):
    cfg = _config(tmp_path, tiny_model_dir)
    store = tmp_path / "results.sqlite"
    fresh = _replies_of(cfg, tmp_path / "fresh", "--no-cache")
    procs = [_spawn(tmp_path, ("driftlab.eval.hf_backend", "HFBackend._decode_batch", 0.05),
                    "eval", "-c", cfg, "--out", tmp_path / f"w{k}") for k in range(3)]
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out
    for k in range(3):
        assert _replies(tmp_path / f"w{k}") == fresh
    assert _stored(store) == 24 + 10
    assert "34 results from the results store, 0 computed" in _cli("eval", "-c", cfg, "--out", str(tmp_path / "after"))


@pytest.mark.parametrize("damage", ["garbage", "torn"])
def test_a_damaged_store_is_one_clear_error(tmp_path, tiny_model_dir, damage):
    cfg = _config(tmp_path, tiny_model_dir)
    store = tmp_path / "results.sqlite"
    if damage == "garbage":
        store.write_bytes(b"this is not a database" * 100)
    else:  # a real store whose pages were overwritten in the middle
        _cli("eval", "-c", cfg, "--out", str(tmp_path / "first"))
        with sqlite3.connect(store) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        data = bytearray(store.read_bytes())
        data[4096:] = b"\xff" * (len(data) - 4096)
        store.write_bytes(bytes(data))
    result = CliRunner().invoke(app, ["eval", "-c", cfg, "--out", str(tmp_path / "second")])
    assert result.exit_code == 2, result.output
    assert f"error: results store {store}:" in result.output and "--no-cache" in result.output
    assert "Traceback" not in result.output
    assert store.exists()  # never deleted: the user decides
    assert _replies_of(cfg, tmp_path / "bare", "--no-cache")  # and the way out works


def test_a_full_disk_at_a_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, tiny_model_dir, monkeypatch):
    """ENOSPC halfway through writing checkpoint-6 (weights written, optimizer not): one clear error naming the last
    complete checkpoint; resume drops the torn one and ends where an uninterrupted run ends."""
    from transformers import Trainer

    from driftlab.train.callbacks import is_complete

    cfg = _config(tmp_path, tiny_model_dir, train={"keep_checkpoints": True})  # checked after the run ends
    _cli("train", "-c", cfg, "--out", str(tmp_path / "ref"))
    original = Trainer._save_optimizer_and_scheduler

    def disk_full_at_6(self, output_dir):
        if output_dir.endswith("checkpoint-6"):
            raise OSError(errno.ENOSPC, "No space left on device", os.path.join(output_dir, "optimizer.pt"))
        return original(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", disk_full_at_6)
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "-c", cfg, "--out", str(run)])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert "training stopped at step 6: No space left on device writing" in message
    assert f"last complete checkpoint: {run / 'checkpoints' / 'checkpoint-4'}" in message
    assert "driftlab train --resume" in message and "Traceback" not in result.output
    assert (run / "checkpoints/checkpoint-6").exists()  # torn: weights but no optimizer, no trainer_state.json
    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", original)
    assert "checkpoint-6 was cut short while being written: removed" in _cli("train", "--resume", str(run))
    assert is_complete(run / "checkpoints/checkpoint-6")  # written again, whole, by the resumed run
    assert _log_steps(run) == list(range(1, 9)) and _losses(run) == _losses(tmp_path / "ref")
