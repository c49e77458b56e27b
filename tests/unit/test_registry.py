"""A training method, a prompting strategy and a probe are each one module: a new file dropped into the package is
found by name, validated by the config, run by its stage, paired by compare, described by the CLI — with no list
to edit anywhere else. Each test writes such a file into a temporary directory on the package's search path."""

import json
import textwrap

import pytest
import yaml
from typer.testing import CliRunner

from driftlab.cli import app
from driftlab.config import load_config
from driftlab.errors import ConfigError
from tests.conftest import ARITH


def _plug_in(monkeypatch, tmp_path, package: str, registry, name: str, source: str) -> None:
    """Put `<name>.py` on `package`'s search path and make `registry` rescan it (restored after the test)."""
    import importlib
    import sys

    registry._load()  # every built-in entry is registered before the snapshot
    monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    folder = tmp_path / f"plugins-{package.replace('.', '-')}"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text(textwrap.dedent(source))
    module = importlib.import_module(package)
    monkeypatch.setattr(module, "__path__", [*module.__path__, str(folder)])
    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.delitem(sys.modules, f"{package}.{name}", raising=False)


def _config(tmp_path, **over) -> str:
    cfg = {"name": "t", "runs_dir": str(tmp_path / "runs"), "data": {"target": {**ARITH, "size": 4, "train_size": 8}},
           **over}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


ECHO_PROBE = """
    from pydantic import Field

    from driftlab.probes import PROBES, Probe
    from driftlab.registry import Metric, Options


    class EchoOptions(Options):
        echo_word: str = Field("hi", description="echo: the word to count")


    def run(ctx, opts):
        rows = [{"id": it["id"], "echo_len": len(it["prompt"]) + len(opts.echo_word)} for it in ctx.items]
        return rows, {"n": len(rows), "echo_len": sum(r["echo_len"] for r in rows) / len(rows)}


    PROBES.register(Probe(name="echo", summary="prompt length plus a word", options=EchoOptions, run=run,
                          metrics=(Metric("echo_len", "lower", "characters in the prompt plus the word"),)))
"""


def test_a_probe_is_one_new_module(tmp_path, monkeypatch):
    from driftlab.compare.paired import compare_probe
    from driftlab.config import CompareConfig, EvalConfig, SuiteConfig
    from driftlab.models import ModelUnderTest, ResolvedModel
    from driftlab.probes import PROBES
    from driftlab.probes.run import run_probes

    _plug_in(monkeypatch, tmp_path, "driftlab.probes", PROBES, "echo", ECHO_PROBE)
    cfg = load_config(_config(tmp_path, probes={"run": ["echo"], "echo_word": "hello"},
                              gate=[{"probe": "echo.echo_len", "max_rise": 1}]))
    assert cfg.probes.of("echo").echo_word == "hello"
    assert cfg.model_dump()["probes"]["echo_word"] == "hello"  # the snapshot keeps it flat
    with pytest.raises(ConfigError, match="probe 'echo' has no metric 'nope'"):
        load_config(_config(tmp_path, gate=[{"probe": "echo.nope", "max_rise": 1}]))
    with pytest.raises(ConfigError, match="unknown config key 'probes.echo_wrd'"):
        load_config(_config(tmp_path, probes={"run": ["echo"], "echo_wrd": "x"}))

    # The stage runs it (no model is loaded: the probe never asks the backend).
    items = [{"id": f"a-{i}", "prompt": "p" * i} for i in range(3)]
    model = ModelUnderTest(ResolvedModel("m", str(tmp_path / "nowhere"), "fp"), cfg.model)
    summary = run_probes(model, EvalConfig(cache=False), cfg.probes, SuiteConfig(name="a", source="jsonl", path="x"),
                         items, [], tmp_path / "out")
    assert summary["probes"]["echo"]["echo_len"] == pytest.approx(6.0)
    rows = [json.loads(line) for line in (tmp_path / "out" / "echo.jsonl").read_text().splitlines()]
    tuned = [{**r, "echo_len": r["echo_len"] + 2} for r in rows]
    assert compare_probe("echo", rows, tuned, CompareConfig(n_bootstrap=200))["echo_len"]["diff"] == 2.0
    listed = CliRunner().invoke(app, ["list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "echo" in listed.output and "echo_word='hi'" in listed.output


SHOUT_STRATEGY = """
    from pydantic import Field

    from driftlab.eval.strategies import STRATEGIES, Strategy, StrategyOutput
    from driftlab.registry import Metric, Options


    class ShoutOptions(Options):
        times: int = Field(1, ge=1, description="shout: how often the prompt is repeated")


    def run(cfg, backend, items, suite, budget, shots):
        prompts = [" ".join([it["prompt"].upper()] * cfg.options.times) for it in items]
        return [StrategyOutput(g, extra={"shouted": True}) for g in backend.generate(prompts, budget, cfg.stop)]


    STRATEGIES.register(Strategy(name="shout", summary="the prompt in capitals, repeated", options=ShoutOptions,
                                 run=run, rows_per_item=lambda cfg: 1,
                                 metrics=(Metric("shouted", "neither", "always true"),)))
"""


class EchoBackend:
    def __init__(self):
        self.asked = []

    def chat(self, prompt):
        return prompt

    def generate(self, prompts, max_new_tokens, stop=None, shared_prefix=""):
        from driftlab.eval.backend import Generation

        self.asked += prompts
        return [Generation("Answer: 7", 3, "stop", 0.0) for _ in prompts]


def test_a_strategy_is_one_new_module(tmp_path, monkeypatch):
    from driftlab.eval.run import evaluate_suite
    from driftlab.eval.strategies import STRATEGIES

    _plug_in(monkeypatch, tmp_path, "driftlab.eval.strategies", STRATEGIES, "shout", SHOUT_STRATEGY)
    cfg = load_config(_config(tmp_path, eval={"strategies": [{"name": "zero_shot"}, {"name": "shout", "times": 2}]}))
    shout = cfg.eval.strategies[1]
    assert shout.options.times == 2
    with pytest.raises(ConfigError, match="unknown config key 'eval.strategies.1.k'"):  # few_shot's key, not shout's
        load_config(_config(tmp_path, eval={"strategies": [{"name": "zero_shot"}, {"name": "shout", "k": 5}]}))
    backend = EchoBackend()
    items = [{"id": "a-0", "suite": "a", "prompt": "what is 3 + 4?", "answer": "7"}]
    records, metrics = evaluate_suite(backend, items, cfg.data.target, cfg.eval, shout)
    assert backend.asked == ["WHAT IS 3 + 4? WHAT IS 3 + 4?"]
    assert records[0]["strategy"] == "shout" and records[0]["shouted"] and metrics["accuracy"] == 1.0


NORMS_METHOD = """
    from driftlab.registry import Options
    from driftlab.runs import is_main_process
    from driftlab.train.methods import METHODS, Method


    def prepare(model, cfg):
        for name, p in model.named_parameters():
            p.requires_grad_("norm" in name)
        return model, None


    def save(trainer, tokenizer, cfg, path, base):
        trainer.save_model(str(path))
        if is_main_process():
            tokenizer.save_pretrained(str(path))


    METHODS.register(Method(name="norms", summary="only the RMSNorm weights", artifact="model", prepare=prepare,
                            save=save))
"""


def test_a_training_method_is_one_new_module(tmp_path, monkeypatch, tiny_model_dir):
    from driftlab.config import ModelConfig, TrainConfig
    from driftlab.models import ModelUnderTest, load_model, resolve_model
    from driftlab.train.methods import METHODS
    from driftlab.train.sft import train_model

    _plug_in(monkeypatch, tmp_path, "driftlab.train.methods", METHODS, "norms", NORMS_METHOD)
    with pytest.raises(ConfigError, match="unknown method 'nrms'"):
        load_config(_config(tmp_path, train={"method": "nrms"}))
    cfg = TrainConfig(method="norms", batch_size=4, max_steps=2, learning_rate=1e-2, report_to=[], cache=False)
    start = ModelUnderTest(resolve_model(str(tiny_model_dir)), ModelConfig())
    items = [{"id": f"t{i}", "question": f"{i}?", "answer": str(i), "prompt": f"{i}?", "completion": str(i)}
             for i in range(8)]
    summary = train_model(start, cfg, items, tmp_path / "run", seed=0)
    assert summary["method"] == "norms" and summary["artifact"] == str(tmp_path / "run" / "model")
    tuned, _ = load_model(start.base, "float32", artifact=tmp_path / "run" / "model")
    base, _ = load_model(start.base, "float32")
    # beyond bf16 rounding (a GPU loads the frozen weights in bf16 and saves them so; the norms start at 1.0)
    changed = {n for (n, p), (_, q) in zip(tuned.named_parameters(), base.named_parameters())
               if (p - q).abs().max() > 1e-3}
    assert changed and all("norm" in n for n in changed)


def test_registries_list_the_built_in_entries_and_refuse_twins():
    from driftlab.eval.strategies import STRATEGIES
    from driftlab.probes import PROBES
    from driftlab.train.methods import METHODS

    assert set(METHODS.names()) == {"lora", "dora", "qlora", "full", "svf"}
    assert set(STRATEGIES.names()) == {"zero_shot", "few_shot", "cot", "self_consistency", "reflection"}
    assert set(PROBES.names()) == {"faithfulness", "diversity", "drift", "shortcuts"}
    with pytest.raises(ValueError, match="registered twice"):
        PROBES.register(type(PROBES.get("drift"))(name="drift", summary="x", run=lambda ctx, opts: ([], {})))
    with pytest.raises(KeyError, match="unknown probe 'vibes'"):
        PROBES.get("vibes")
