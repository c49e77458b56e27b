"""Every training method on the tiny random Qwen3: the loss goes down, isolation restricts what changes, a killed
run resumes to the same end, SVF experts combine, replay mixes in, a non-finite loss stops the run."""

import json
import math

import pytest
import torch

from driftlab.config import ModelConfig, TrainConfig
from driftlab.data.build import normalize
from driftlab.errors import ConfigError, DriftlabError
from driftlab.models import ModelUnderTest, load_model, resolve_model
from driftlab.train.sft import resume_training, train_model
from driftlab.train.methods import layer_range
from tests.conftest import dies_at_step, logits_of

ITEMS = [{"id": f"t{i}", "question": f"What is {i} + {i + 1}?", "answer": str(2 * i + 1),
          "prompt": f"What is {i} + {i + 1}?", "completion": f"Answer: {2 * i + 1}"} for i in range(32)]


def _model(tiny_model_dir):
    return resolve_model(str(tiny_model_dir))


def _start(tiny_model_dir):
    return ModelUnderTest(_model(tiny_model_dir), ModelConfig())


def _train(tiny_model_dir, out, **over):
    cfg = TrainConfig(**{"batch_size": 8, "max_steps": 8, "save_steps": 4, "learning_rate": 5e-3,
                         "warmup_ratio": 0.0, "report_to": [], **over})
    return train_model(_start(tiny_model_dir), cfg, ITEMS, out, seed=0)


def _losses(out):
    return [r["loss"] for r in map(json.loads, (out / "train_log.jsonl").read_text().splitlines()) if "loss" in r]


@pytest.mark.parametrize("method, lr", [("lora", 5e-3), ("dora", 5e-3), ("full", 1e-3), ("svf", 2e-2)])
def test_each_method_lowers_the_loss(tiny_model_dir, tmp_path, method, lr):
    summary = _train(tiny_model_dir, tmp_path / method, method=method, learning_rate=lr)
    losses = _losses(tmp_path / method)
    assert sum(losses[-2:]) / 2 < losses[0], losses
    assert 0 < summary["trainable_params"] <= summary["total_params"]
    artifact = tmp_path / method / {"lora": "adapter", "dora": "adapter", "full": "model", "svf": "expert"}[method]
    assert summary["artifact"] == str(artifact) and artifact.is_dir()
    model, _ = load_model(_model(tiny_model_dir), artifact=artifact)  # what eval will load
    base, _ = load_model(_model(tiny_model_dir))
    changed = [n for (n, p), (_, q) in zip(model.named_parameters(), base.named_parameters()) if not torch.equal(p, q)]
    assert changed, f"{method}: the trained artifact changes nothing"
    if method == "dora":
        assert json.loads((artifact / "adapter_config.json").read_text())["use_dora"] is True
    if method in ("lora", "dora"):  # the adapter alone, in float16 (train.adapter_dtype): no tokenizer copy
        from safetensors.torch import load_file

        assert not (artifact / "tokenizer.json").exists()
        saved = load_file(artifact / "adapter_model.safetensors")
        assert {t.dtype for k, t in saved.items() if "lora_" in k and "magnitude" not in k} == {torch.float16}
        assert all(t.dtype == torch.float32 for k, t in saved.items() if "magnitude" in k)  # DoRA's: whole output


def test_a_tensor_float16_would_overflow_or_mostly_flush_stays_float32(tmp_path):
    from safetensors.torch import load_file, save_file

    from driftlab.train.methods.lora import cast_adapter

    f = tmp_path / "adapter_model.safetensors"
    save_file({"a.lora_A.weight": torch.tensor([0.5, 1e-3, 1e-9]),  # one tiny entry flushed: no matter
               "b.lora_B.weight": torch.tensor([1e-9, 2e-9]),  # all of it flushed: kept
               "c.lora_B.weight": torch.tensor([7e4]), "d.lora_magnitude_vector": torch.tensor([1.0])}, f)
    cast_adapter(f, "float16")
    dtypes = {k: v.dtype for k, v in load_file(f).items()}
    assert dtypes == {"a.lora_A.weight": torch.float16, "b.lora_B.weight": torch.float32,
                      "c.lora_B.weight": torch.float32, "d.lora_magnitude_vector": torch.float32}


@pytest.mark.parametrize("method", ["lora", "dora"])
def test_adapter_dtype_float32_keeps_training_precision_and_float16_loads_alike(tiny_model_dir, tmp_path, method):
    from safetensors.torch import load_file

    half = _train(tiny_model_dir, tmp_path / "half", method=method)
    full = _train(tiny_model_dir, tmp_path / "full", method=method, adapter_dtype="float32", cache=False)
    w16, w32 = (load_file(tmp_path / d / "adapter/adapter_model.safetensors") for d in ("half", "full"))
    assert {t.dtype for t in w32.values()} == {torch.float32} and w16.keys() == w32.keys()
    assert all(torch.equal(w16[k], w32[k].to(w16[k].dtype)) for k in w16)  # the same training, stored smaller
    x = torch.tensor([[5, 9, 12, 40, 7]])
    with torch.no_grad():
        a, b = (logits_of(load_model(_model(tiny_model_dir), dtype="float32", artifact=s["artifact"])[0], x)
                for s in (half, full))
    assert torch.allclose(a, b, atol=1e-3), (a - b).abs().max()
    from transformers import AutoModelForCausalLM

    from driftlab.train.methods import METHODS
    from driftlab.train.sft import _start_adapter

    lm, _ = _start_adapter(AutoModelForCausalLM.from_pretrained(tiny_model_dir), half["artifact"], METHODS.get(method))
    trained = [p for p in lm.parameters() if p.requires_grad]  # train.init_from continues in float32 (PEFT upcasts)
    assert trained and {p.dtype for p in trained} == {torch.float32}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="QLoRA's 4-bit kernels need a CUDA GPU")
def test_qlora_on_a_gpu_lowers_the_loss(tiny_model_dir, tmp_path):
    pytest.importorskip("bitsandbytes")
    summary = _train(tiny_model_dir, tmp_path / "q", method="qlora")
    losses = _losses(tmp_path / "q")
    assert sum(losses[-2:]) / 2 < losses[0], losses
    model, _ = load_model(_model(tiny_model_dir), artifact=summary["artifact"])  # what eval will load
    assert logits_of(model, [[5, 9, 12, 40, 7]]).isfinite().all()


def test_qlora_without_cuda_is_one_clear_error(tiny_model_dir, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: qlora runs there (benchmarks/)")
    with pytest.raises(DriftlabError, match="qlora needs a CUDA GPU"):
        _train(tiny_model_dir, tmp_path / "q", method="qlora")


def test_isolation_trains_only_the_selected_blocks_and_modules(tiny_model_dir, tmp_path):
    full = _train(tiny_model_dir, tmp_path / "all", method="full", max_steps=1)
    top = _train(tiny_model_dir, tmp_path / "top", method="full", max_steps=1, layers="top:1",
                 target_modules=["self_attn"])
    attn_params = sum(p.numel() for n, p in load_model(_model(tiny_model_dir))[0].named_parameters()
                      if ".layers.1.self_attn." in n and n.endswith(".weight") and "norm" not in n)
    assert top["trainable_params"] == attn_params < full["trainable_params"] == full["total_params"]
    lora_top = _train(tiny_model_dir, tmp_path / "lt", max_steps=1, layers="1-1")
    lora_all = _train(tiny_model_dir, tmp_path / "la", max_steps=1)
    assert lora_all["trainable_params"] == 2 * lora_top["trainable_params"]  # 2 blocks, same modules each
    assert layer_range("top:2", 30) == {28, 29} and layer_range("3-5", 30) == {3, 4, 5}
    with pytest.raises(ConfigError, match="blocks 0-1"):
        _train(tiny_model_dir, tmp_path / "bad", layers="5-9")


def test_killed_run_resumes_to_the_same_end(tiny_model_dir, tmp_path, monkeypatch):
    reference = _train(tiny_model_dir, tmp_path / "ref", save_steps=3, report_to=["tensorboard"])

    with dies_at_step(monkeypatch, 5):  # after checkpoint-3, before checkpoint-6: like a kill -9 mid-run
        _train(tiny_model_dir, tmp_path / "run", save_steps=3, cache=False, report_to=["tensorboard"])  # not copied
    assert not (tmp_path / "run" / "adapter").exists()
    resumed = resume_training(tmp_path / "run")
    assert resumed["resumed"] and resumed["steps"] == reference["steps"] == 8
    final, ref_final = _losses(tmp_path / "run")[-1], _losses(tmp_path / "ref")[-1]
    assert abs(final - ref_final) <= 0.01 * ref_final, (final, ref_final)
    rows = [json.loads(line) for line in (tmp_path / "run/train_log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "loss" in r]
    assert steps == sorted(set(steps)) == list(range(1, 9))  # steps 4-5 trained twice, logged once
    assert resumed["first_loss"] == reference["first_loss"] and resumed["tokens"] == reference["tokens"]
    # the summary and TensorBoard describe the whole run (issue 18: train_loss averaged steps 4-8 only, and
    # TensorBoard showed step 4 twice)
    assert math.isclose(resumed["train_loss"], reference["train_loss"], rel_tol=0.01)
    assert math.isclose(resumed["train_loss"], sum(_losses(tmp_path / "run")) / 8, rel_tol=1e-6)
    assert _tensorboard_steps(tmp_path / "run/tensorboard") == list(range(1, 9))
    # finished: the checkpoints served --resume only, and are gone (train.keep_checkpoints keeps them)
    assert not (tmp_path / "run/checkpoints").exists() and not (tmp_path / "ref/checkpoints").exists()
    with pytest.raises(DriftlabError, match="this run finished"):
        resume_training(tmp_path / "run")
    kept = _train(tiny_model_dir, tmp_path / "kept", max_steps=4, keep_checkpoints=True, cache=False)
    assert (tmp_path / "kept/checkpoints/checkpoint-4").is_dir() and kept["steps"] == 4


def _tensorboard_steps(log_dir) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))  # reads every event file in the dir, honouring purges
    events.Reload()
    return [e.step for e in events.Scalars("train/loss")]


def test_a_resumed_runs_event_file_sorts_after_the_killed_runs(tmp_path):
    """CI: the killed run's event file and the resumed run's started in the same second, so the resumed file
    (counter 10) sorted before the killed one (counter 9) and TensorBoard showed steps 4-8 then 1-4."""
    import os
    import socket
    import time

    from driftlab.train.sft import _tensorboard

    log_dir = tmp_path / "tensorboard"
    log_dir.mkdir()
    killed = log_dir / f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.99999"
    killed.write_bytes(b"")
    callback = _tensorboard(log_dir, purge_step=4)
    callback.tb_writer.close()
    files = sorted(f.name for f in log_dir.iterdir())
    assert len(files) == 2 and files[0] == killed.name, files


def test_resume_needs_a_checkpoint(tmp_path):
    with pytest.raises(DriftlabError, match="not a driftlab train run"):
        resume_training(tmp_path)


def test_svf_experts_combine_at_inference(tiny_model_dir, tmp_path):
    from driftlab.artifacts import combine_experts, load_expert, save_vectors

    a = _train(tiny_model_dir, tmp_path / "a", method="svf", learning_rate=2e-2)
    items_b = [{**it, "completion": f"The answer is {it['answer']}."} for it in ITEMS]
    cfg = TrainConfig(method="svf", batch_size=8, max_steps=8, learning_rate=2e-2, report_to=[])
    b = train_model(_start(tiny_model_dir), cfg, items_b, tmp_path / "b", seed=1)
    za, zb = load_expert(a["artifact"]), load_expert(b["artifact"])
    (tmp_path / "ab.tmp").mkdir()  # a user's directory beside the output: left alone (issue 18)
    mixed = save_vectors(combine_experts([za, zb], [0.5, 0.5]), tmp_path / "ab")
    assert (tmp_path / "ab.tmp").is_dir()
    name = sorted(za)[0]
    assert torch.allclose(load_expert(mixed)[name], (za[name] + zb[name]) / 2)

    x = torch.tensor([[5, 9, 12, 40, 7]])
    logits = {}
    for key, adapter in [("base", None), ("a", a["artifact"]), ("b", b["artifact"]), ("ab", mixed)]:
        with torch.no_grad():
            logits[key] = logits_of(load_model(_model(tiny_model_dir), artifact=adapter)[0], x)
    for other in ("base", "a", "b"):
        assert not torch.allclose(logits["ab"], logits[other], atol=1e-5), other


def test_svf_with_unit_scales_is_the_base_model(tiny_model_dir):
    from driftlab.train.svf_layer import apply_svf

    base, _ = load_model(_model(tiny_model_dir))
    wrapped, _ = load_model(_model(tiny_model_dir))
    apply_svf(wrapped, ["model.layers.0.mlp.down_proj", "model.layers.1.self_attn.q_proj"])
    x = torch.tensor([[5, 9, 12, 40, 7]])
    with torch.no_grad():
        assert torch.allclose(logits_of(base, x), logits_of(wrapped, x), atol=1e-4)


class ReplyBackend:
    """Stands in for the base model's backend in self-replay (the tiny random model never ends a reply)."""

    def __init__(self):
        self.asked = []

    def chat(self, prompt):
        return f"<user>{prompt}"

    def generate(self, prompts, max_new_tokens, stop=None, shared_prefix=""):
        from driftlab.eval.backend import Generation

        self.asked += prompts
        return [Generation(f"A short reply to: {p}", 5, "length" if "poem" in p else "stop", 0.01) for p in prompts]


def test_replay_mix_and_augmentation(tiny_model_dir, tmp_path, monkeypatch):
    import driftlab.eval.open

    monkeypatch.setenv("DRIFTLAB_HOME", str(tmp_path / "home"))
    fake = ReplyBackend()
    monkeypatch.setattr(driftlab.eval.open, "_backend", lambda *a, **k: fake)  # behind the real results store
    mix = [{"name": "logic", "source": "reasoning_gym", "task": "basic_arithmetic", "ratio": 0.25,
            "task_kwargs": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}},
           {"name": "self", "source": "self_replay", "ratio": 0.25}]
    summary = _train(tiny_model_dir, tmp_path / "m", max_steps=2, mix=mix,
                     augment_templates=["Q: {question}", "Solve: {question}"])
    rows = [json.loads(line) for line in (tmp_path / "m/train_set.jsonl").read_text().splitlines()]
    assert summary["mix"]["sources"]["logic"]["items"] == 8 == sum(r.get("suite") == "mix:logic" for r in rows)
    replay = [r for r in rows if r.get("suite") == "mix:self"]
    assert len(replay) == 8 and len(rows) == 48
    assert all(r["completion"] == f"A short reply to: {r['question']}" for r in replay)
    assert not any("poem" in r["question"] for r in replay)  # cut-off replies are not trained on
    assert any(r["prompt"].startswith(("Q: ", "Solve: ")) for r in rows if r["id"].startswith("t"))
    asked = len(fake.asked)
    _train(tiny_model_dir, tmp_path / "m2", max_steps=1, mix=mix)
    assert len(fake.asked) == asked  # generated once: the second run reads the results store


def test_replay_never_uses_eval_prompts(tiny_model_dir, tmp_path):
    from driftlab.data.sources import reasoning_gym_items

    kwargs = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}
    from driftlab.train.mix import MIX_SEED_OFFSET

    would_draw = reasoning_gym_items("basic_arithmetic", kwargs, 20, 0 + MIX_SEED_OFFSET, "k")
    exclude = {normalize(r["question"]) for r in would_draw[:3]}
    cfg = TrainConfig(batch_size=8, max_steps=1, report_to=[], mix=[
        {"name": "r", "source": "reasoning_gym", "task": "basic_arithmetic", "ratio": 0.25, "task_kwargs": kwargs}])
    s = train_model(_start(tiny_model_dir), cfg, ITEMS, tmp_path / "x", 0, exclude)
    rows = [json.loads(line) for line in (tmp_path / "x/train_set.jsonl").read_text().splitlines()]
    assert not {normalize(r["question"]) for r in rows} & exclude
    assert s["mix"]["sources"]["r"]["removed_eval_overlap"] >= 1


def test_nonfinite_loss_stops_without_saving():
    from transformers import TrainerControl, TrainerState

    from driftlab.train.callbacks import NonFiniteLossGuard

    guard, state, control = NonFiniteLossGuard(), TrainerState(), TrainerControl(should_save=True)
    state.global_step = 7
    guard.on_log(None, state, control, logs={"loss": 1.0})
    assert not control.should_training_stop and guard.bad_step is None
    guard.on_log(None, state, control, logs={"loss": math.nan})
    assert control.should_training_stop and not control.should_save and guard.bad_step == 7


def test_a_nan_gradient_with_a_finite_loss_stops_too_and_nan_checkpoints_are_not_called_good(tmp_path):
    """Issue 18: a step can log a finite loss while its gradient norm is NaN (its update then makes every weight NaN):
    the guard stops there, before the checkpoint, and the last good checkpoint is the newest with finite weights."""
    import torch
    from safetensors.torch import save_file
    from transformers import TrainerControl, TrainerState

    from driftlab.train.callbacks import NonFiniteLossGuard, last_good_checkpoint

    guard, state, control = NonFiniteLossGuard(), TrainerState(), TrainerControl(should_save=True)
    state.global_step = 3
    guard.on_log(None, state, control, logs={"loss": 25.96, "grad_norm": math.nan})
    assert control.should_training_stop and not control.should_save
    assert (guard.bad_step, guard.bad_what) == (3, "grad_norm")
    for step, value in [(2, 0.5), (4, 1.0), (6, math.nan)]:
        (tmp_path / f"checkpoint-{step}").mkdir()
        weights = torch.full((3, 2), value)
        save_file({"a": torch.ones(2), "b": weights}, str(tmp_path / f"checkpoint-{step}" / "adapter_model.safetensors"))
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")  # HF writes it last
    assert last_good_checkpoint(tmp_path) == (tmp_path / "checkpoint-4", ["checkpoint-6"])
    (tmp_path / "checkpoint-4" / "trainer_state.json").write_text('{"global_st')  # a write cut short
    assert last_good_checkpoint(tmp_path) == (tmp_path / "checkpoint-2", ["checkpoint-6", "checkpoint-4"])


def test_diverging_run_is_one_clear_error(tiny_model_dir, tmp_path):
    with pytest.raises(DriftlabError, match=r"loss became (nan|inf) at step \d+; last good checkpoint"):
        _train(tiny_model_dir, tmp_path / "nan", method="full", learning_rate=1e38)
    assert not (tmp_path / "nan" / "model").exists()


def test_early_stopping_watches_a_held_out_loss(tiny_model_dir, tmp_path):
    s = _train(tiny_model_dir, tmp_path / "es", eval_fraction=0.25, early_stopping_patience=1, save_steps=1,
               max_steps=30, learning_rate=5e-2)
    log = [json.loads(line) for line in (tmp_path / "es/train_log.jsonl").read_text().splitlines()]
    assert any("eval_loss" in r for r in log) and s["best_eval_loss"] is not None
    assert s["eval_items"] == 8 and s["train_items"] == 24
    assert s["stopped_early"] and s["steps"] < 30


@pytest.mark.parametrize("method", ["lora", "svf"])
def test_export_merges_into_one_checkpoint(tiny_model_dir, tmp_path, method):
    from typer.testing import CliRunner

    from driftlab.cli import app

    s = _train(tiny_model_dir, tmp_path / "t", method=method, learning_rate=2e-2, max_steps=4)
    out = tmp_path / "merged"
    (tmp_path / "merged.tmp").mkdir()  # a user's directory beside --out (issue 18: export removed it)
    (tmp_path / "merged.tmp" / "notes.txt").write_text("mine")
    result = CliRunner().invoke(app, ["export", "--adapter", str(tmp_path / "t"), "--model", str(tiny_model_dir),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "merged.tmp" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".merged")) == []  # its temp dir is gone
    x = torch.tensor([[5, 9, 12, 40, 7]])
    with torch.no_grad():
        merged = logits_of(load_model(resolve_model(str(out)), "float32")[0], x)  # float32: 'auto' is bf16 on a GPU
        applied = logits_of(load_model(_model(tiny_model_dir), "float32", artifact=s["artifact"])[0], x)
    assert torch.allclose(merged, applied, atol=1e-5)
    assert not (out / "adapter_config.json").exists() and (out / "config.json").exists()


@pytest.mark.parametrize("method", ["lora", "svf", "full"])
def test_scaling_reaches_base_at_zero_and_the_fine_tune_at_one(tiny_model_dir, tmp_path, method):
    s = _train(tiny_model_dir, tmp_path / method, method=method, learning_rate=2e-2, max_steps=3)
    x = torch.tensor([[5, 9, 12, 40, 7]])
    with torch.no_grad():
        base = logits_of(load_model(_model(tiny_model_dir), "float32")[0], x)
        tuned = logits_of(load_model(_model(tiny_model_dir), "float32", artifact=s["artifact"])[0], x)
        zero, one, half = (logits_of(load_model(_model(tiny_model_dir), "float32", artifact=s["artifact"], scale=a)[0],
                                     x)
                           for a in (0.0, 1.0, 0.5))
    assert torch.allclose(zero, base, atol=1e-4) and torch.allclose(one, tuned, atol=1e-4)
    assert not torch.allclose(half, base, atol=1e-4) and not torch.allclose(half, tuned, atol=1e-4)


def test_pareto_frontier():
    from driftlab.compare.sweep import frontier

    pts = [{"target_gain": g, "heldout_change": h} for g, h in [(0.2, -0.1), (0.1, 0.0), (0.1, -0.05), (0.0, 0.0)]]
    assert frontier(pts) == [True, True, False, False]


def test_identical_run_comes_from_the_train_cache(tiny_model_dir, tmp_path):
    first = _train(tiny_model_dir, tmp_path / "a", max_steps=4)
    assert first["cache"]["hit"] is False
    second = _train(tiny_model_dir, tmp_path / "b", max_steps=4)
    assert second["cache"] == {"key": first["cache"]["key"], "hit": True, "trained_wall_s": first["wall_s"]}
    assert second["artifact"] == str(tmp_path / "b" / "adapter") and not (tmp_path / "b" / "checkpoints").exists()
    for f in ("adapter/adapter_model.safetensors", "train_log.jsonl"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    assert json.loads((tmp_path / "b" / "train.json").read_text())["cache"]["hit"] is True
    # Anything that changes the weights misses: another seed-free knob (the learning rate), or cache off.
    assert _train(tiny_model_dir, tmp_path / "c", max_steps=4, learning_rate=1e-3)["cache"]["hit"] is False
    assert "cache" not in _train(tiny_model_dir, tmp_path / "d", max_steps=4, cache=False)


def test_cached_artifact_matches_a_fresh_training(tiny_model_dir, tmp_path):
    """The cache is only honest if training is deterministic: a second run with the cache off writes the same
    weights bit for bit."""
    _train(tiny_model_dir, tmp_path / "a", max_steps=4)
    _train(tiny_model_dir, tmp_path / "b", max_steps=4, cache=False)
    f = "adapter/adapter_model.safetensors"
    assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_train_cache_misses_on_what_changes_the_weights(tiny_model_dir, tmp_path, monkeypatch):
    first = _train(tiny_model_dir, tmp_path / "a", max_steps=4)
    # save_steps sets when a held-out loss is taken (early stopping, best checkpoint): part of the key
    assert _train(tiny_model_dir, tmp_path / "b", max_steps=4, save_steps=2)["cache"]["hit"] is False
    # bf16 decided from the hardware at train time: another machine's choice is another artifact
    import driftlab.train.sft as sft

    with monkeypatch.context() as m:
        m.setattr(sft, "has_bf16", lambda device: not first["bf16"])
        assert _train(tiny_model_dir, tmp_path / "c", max_steps=4)["cache"]["hit"] is False
    assert _train(tiny_model_dir, tmp_path / "d", max_steps=4)["cache"]["hit"] is True


def test_a_broken_cache_entry_is_a_miss(tiny_model_dir, tmp_path):
    import shutil

    first = _train(tiny_model_dir, tmp_path / "a", max_steps=4)
    entry = tmp_path / "driftlab-home" / "train-cache" / first["cache"]["key"]
    shutil.rmtree(entry / "adapter")
    again = _train(tiny_model_dir, tmp_path / "b", max_steps=4)
    assert again["cache"]["hit"] is False and (tmp_path / "b" / "adapter" / "adapter_config.json").exists()


class ChainBackend(ReplyBackend):
    """The base model's sampled chains for self-distillation: right for even i, wrong for odd i."""

    def sample(self, prompts, max_new_tokens, n, temperature, seed, stop=None, shared_prefix=""):
        from driftlab.eval.backend import Generation

        self.asked += prompts
        out = []
        for p in prompts:
            i = int(p.split("What is ")[1].split(" +")[0])
            result = 2 * i + 1 + (i % 2)
            out.append([Generation(f"Try {j}: {i} + {i + 1} = {result}", 8, "stop", 0.01) for j in range(n)])
        return out


def test_chain_targets_train_and_report_their_yield(tiny_model_dir, tmp_path, monkeypatch):
    """Gold and self-distilled chains go through the trainer; the self-distillation yield is in train.json and its
    samples come from the results store on a second run."""
    import driftlab.eval.open

    items = [{**it, "meta": {"source_dataset": "basic_arithmetic"}} for it in ITEMS]
    gold = train_model(_start(tiny_model_dir), TrainConfig(batch_size=8, max_steps=2, report_to=[],
                                                           chains={"source": "gold"}), items, tmp_path / "g", 0)
    assert gold["mix"]["chains"] == {"source": "gold", "rows": 32} and gold["steps"] == 2
    monkeypatch.setenv("DRIFTLAB_HOME", str(tmp_path / "home"))
    fake = ChainBackend()
    monkeypatch.setattr(driftlab.eval.open, "_backend", lambda *a, **k: fake)  # behind the real results store
    cfg = TrainConfig(batch_size=8, max_steps=2, report_to=[], chains={"source": "self", "k": 3, "per_question": 2})
    summary = train_model(_start(tiny_model_dir), cfg, items, tmp_path / "s", 0, scorer="numeric")
    chains = summary["mix"]["chains"]
    assert (chains["questions"], chains["sampled"], chains["questions_with_chain"], chains["kept"]) == (32, 96, 16, 32)
    assert chains["wrong"] == 48 and chains["over_cap"] == 16
    rows = [json.loads(line) for line in (tmp_path / "s/train_set.jsonl").read_text().splitlines()]
    assert all(r["completion"].endswith(f"Answer: {r['answer']}") and "step by step" in r["prompt"] for r in rows)
    asked = len(fake.asked)
    train_model(_start(tiny_model_dir), cfg, items, tmp_path / "s2", 0, scorer="numeric")
    assert len(fake.asked) == asked  # sampled once: the second run reads the results store


def test_trainable_weights_are_float32_when_the_model_loads_in_bf16(tiny_model_dir, tmp_path):
    """A GPU loads weights in bf16; AdamW updates on bf16 weights round away, so under bf16 autocast what is
    trained is float32 (the frozen rest stays bf16). Forced here with model.dtype bfloat16 on the CPU."""
    from pathlib import Path

    from safetensors import safe_open

    cfg = TrainConfig(method="full", target_modules=["down_proj"], batch_size=8, max_steps=2, learning_rate=1e-3,
                      report_to=[], cache=False, bf16=True, offload_activations=True)  # offloading: GPU only
    s = train_model(ModelUnderTest(_model(tiny_model_dir), ModelConfig(dtype="bfloat16")), cfg, ITEMS,
                    tmp_path / "t", seed=0)
    with safe_open(str(Path(s["artifact"]) / "model.safetensors"), "pt") as f:
        dtypes = {k: f.get_tensor(k).dtype for k in f.keys()}
    assert {d for k, d in dtypes.items() if "down_proj" in k} == {torch.float32}
    assert {d for k, d in dtypes.items() if "down_proj" not in k} == {torch.bfloat16}
    # asked for: ignored on a CPU (CUDA streams, pinned memory), taken on a GPU
    assert s["offload_activations"] is torch.cuda.is_available()


@pytest.mark.parametrize("every, expected", [(1, 2), (2, 1)])
def test_the_plans_layer_count_reaches_the_trainer(tiny_model_dir, tmp_path, monkeypatch, every, expected):
    """A GPU plan that checkpoints one layer in n (train/memory.py) reaches transformers' every_n_layers: here
    forced on the CPU, on the tiny model's 2 layers."""
    from driftlab.train import sft

    real = sft._machine_choices
    monkeypatch.setattr(sft, "_machine_choices", lambda *a, **k: {
        **real(*a, **k), "gradient_checkpointing": True, "every_n_layers": every})
    s = _train(tiny_model_dir, tmp_path / "t", max_steps=1, cache=False)
    assert s["gradient_checkpointing"] is True and s["checkpointed_layers"] == expected


def _adapter(run_dir):
    from safetensors.torch import load_file

    return load_file(run_dir / "adapter" / "adapter_model.safetensors")


def test_micro_batches_train_the_same_update(tiny_model_dir, tmp_path):
    """train.micro_batch splits each batch into passes whose gradients are accumulated into one optimizer step:
    the same adapter as the whole batch at once (float32; only the summation order differs), the same steps, and the
    split is said in train.json and keyed in the train cache (not reused for the whole-batch run)."""
    items = [{**it, "completion": f"Answer: {it['answer']}" + " so" * (i % 7)} for i, it in enumerate(ITEMS)]
    cfg = TrainConfig(batch_size=8, max_steps=3, learning_rate=5e-3, warmup_ratio=0.0, report_to=[], bf16=False,
                      adapter_dtype="float32")  # completions of 1-7 extra tokens: a per-pass mean would differ
    whole = train_model(_start(tiny_model_dir), cfg, items, tmp_path / "whole", seed=0)
    split = train_model(_start(tiny_model_dir), cfg.model_copy(update={"micro_batch": 2}), items, tmp_path / "split",
                        seed=0)
    assert (whole["micro_batch"], whole["accumulation"]) == (8, 1) and (split["micro_batch"], split["accumulation"]) \
        == (2, 4) and whole["steps"] == split["steps"] == 3
    assert split["tokens"] == whole["tokens"] and split["cache"]["hit"] is False
    logs = [[(r["loss"], r["grad_norm"]) for r in map(json.loads, (tmp_path / d / "train_log.jsonl").read_text()
             .splitlines()) if "loss" in r] for d in ("whole", "split")]  # the loss and gradient, not only AdamW's
    assert len(logs[0]) == 3 and all(math.isclose(x, y, rel_tol=1e-5) for u, v in zip(*logs) for x, y in zip(u, v))
    a, b = _adapter(tmp_path / "whole"), _adapter(tmp_path / "split")  # scale-free update: a constant factor hides
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6) for k in a)
    assert any(a[k].abs().max() > 1e-3 for k in a if "lora_B" in k)  # it trained: B left its zero init
    with pytest.raises(ValueError, match="micro_batch 3 does not divide batch_size 8"):
        TrainConfig(batch_size=8, micro_batch=3)


def test_micro_batches_on_a_model_without_a_batch_token_count_are_said(tiny_model_dir, monkeypatch):
    """Where the trainer takes no token count of the whole batch (a model class with accepts_loss_kwargs False),
    each pass's loss is its own mean: a micro_batch the user sets is warned about, and the GPU plan never splits."""
    from transformers import Qwen3ForCausalLM

    from driftlab.train import sft
    from driftlab.train.memory import fallback_plan

    assert sft.sums_over_passes(Qwen3ForCausalLM)  # a forward taking **kwargs: the Trainer counts
    monkeypatch.setattr(Qwen3ForCausalLM, "accepts_loss_kwargs", False, raising=False)
    assert not sft.sums_over_passes(Qwen3ForCausalLM)
    cfg = TrainConfig(batch_size=8, micro_batch=4)
    with pytest.warns(UserWarning, match="micro_batch=4: Qwen3ForCausalLM takes no token count"):
        sft._machine_choices(cfg, "cpu", _model(tiny_model_dir), ModelConfig(), [])
    seen = {}
    monkeypatch.setattr("driftlab.train.memory.gpu_plan", lambda *a, **k: seen.update(k) or fallback_plan(
        None, None, "mocked"), raising=True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (80 * 2**30, 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda *a: 0)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda *a: 0)
    sft._gpu_plan(TrainConfig(batch_size=8), _model(tiny_model_dir), ModelConfig(), [], True)
    assert seen["split"] is False


@pytest.mark.parametrize("checkpointing", [False, True])
def test_adapter_inputs_are_not_cast_and_training_is_unchanged(tiny_model_dir, tmp_path, monkeypatch, checkpointing):
    """Under bf16 autocast with float32 adapters, PEFT's casts of each LoRA input are turned off
    (sft._uncast_adapter_inputs): the losses and the adapter are bit for bit those of a run that keeps them, with
    the layers recomputed in backward too (forced on the CPU, as a GPU plan may)."""
    from driftlab.train import sft

    real_choices = sft._machine_choices
    monkeypatch.setattr(sft, "_machine_choices", lambda *a, **k: {
        **real_choices(*a, **k), "gradient_checkpointing": checkpointing})

    start = ModelUnderTest(_model(tiny_model_dir), ModelConfig(dtype="bfloat16"))
    cfg = TrainConfig(batch_size=8, max_steps=3, learning_rate=5e-3, report_to=[], cache=False, bf16=True,
                      eval_fraction=0.25, save_steps=2, adapter_dtype="float32")
    switched = []
    real = sft._uncast_adapter_inputs
    monkeypatch.setattr(sft, "_uncast_adapter_inputs", lambda lm: switched.append(real(lm)))
    s = train_model(start, cfg, ITEMS, tmp_path / "off", seed=0)
    # 7 linear layers in each of the tiny model's 2 decoder layers
    assert s["checkpointed_layers"] == (2 if checkpointing else 0) and switched == [14]
    monkeypatch.setattr(sft, "_uncast_adapter_inputs", lambda lm: 0)
    train_model(start, cfg, ITEMS, tmp_path / "kept", seed=0)
    # bit for bit on a CPU; a GPU's backward kernels are not deterministic from run to run, whatever the casts
    same = torch.equal if not torch.cuda.is_available() else lambda x, y: torch.allclose(x, y, rtol=1e-2, atol=1e-4)
    evals = [[r["eval_loss"] for r in map(json.loads, (tmp_path / d / "train_log.jsonl").read_text().splitlines())
              if "eval_loss" in r] for d in ("off", "kept")]
    assert evals[0] and same(torch.tensor(evals[0]), torch.tensor(evals[1]))
    assert same(torch.tensor(_losses(tmp_path / "off")), torch.tensor(_losses(tmp_path / "kept")))
    a, b = _adapter(tmp_path / "off"), _adapter(tmp_path / "kept")
    assert all(same(a[k], b[k]) for k in a)
