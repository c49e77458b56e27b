"""The one test on the real embedded model: prepare it (a no-op when cached) and evaluate a handful of items."""

import json

import pytest

from driftlab.config import EvalConfig, ModelConfig, SuiteConfig
from driftlab.data.build import _render
from driftlab.eval import evaluate_model
from driftlab.models import ModelUnderTest, prepare_embedded, resolve_model

pytestmark = pytest.mark.integration


def test_prepare_and_eval_embedded_model(tmp_path):
    path = prepare_embedded()
    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config and (path / "model.safetensors").exists()
    first = resolve_model("embedded")
    assert prepare_embedded() == path and resolve_model("embedded").fingerprint == first.fingerprint  # no-op

    knowledge = SuiteConfig(name="capitals", source="jsonl", path="unused", mode="loglik")
    arith = SuiteConfig(name="arith", source="jsonl", path="unused", scorer="numeric",
                        template="{question}\nReply with only the final line 'Answer: <number>'.")
    raw_k = [{"question": f"What is the capital of {c}?", "answer": a, "choices": ch, "meta": {}} for c, a, ch in [
        ("France", "Paris", ["Paris", "Tokyo", "Lima", "Cairo"]),
        ("Japan", "Tokyo", ["Oslo", "Tokyo", "Rome", "Lima"]),
        ("Italy", "Rome", ["Cairo", "Oslo", "Rome", "Paris"])]]
    raw_a = [{"question": f"Calculate {a} + {b}.", "answer": str(a + b), "choices": None, "meta": {}}
             for a, b in [(12, 30), (25, 25)]]
    suites = {"capitals": _render(raw_k, knowledge, 0), "arith": _render(raw_a, arith, 0)}
    summary = evaluate_model(ModelUnderTest(first, ModelConfig()), suites, {"capitals": knowledge, "arith": arith},
                             EvalConfig(batch_size=4, max_new_tokens=16, cache=False), tmp_path)
    # SmolLM2-135M-Instruct knows these three capitals (measured: 90% on the bundled 70-item suite).
    assert summary["suites"]["capitals"]["accuracy"] == 1.0
    records = [json.loads(line) for line in (tmp_path / "arith.jsonl").read_text().splitlines()]
    assert all(r["output"].strip() for r in records)  # the real model says something


def test_greedy_is_batch_size_invariant_on_the_embedded_model():
    from driftlab.eval.hf_backend import HFBackend
    from driftlab.models import load_model

    # float32: bf16 (the 'auto' choice on bf16 CPUs) rounds differently with each batch shape, so its greedy
    # replies may change with the batch composition; float32 is the setting for batch-invariant outputs.
    model, tok = load_model(resolve_model("embedded"), "float32")
    prompts = [f"Calculate {a} + {b}. Reply with only the final line 'Answer: <number>'." for a, b in
               [(12, 30), (45, 17), (88, 9), (23, 71), (60, 6), (31, 44), (19, 29), (77, 13)]]
    one = [g.text for g in HFBackend(model, tok, batch_size=1).generate(prompts, 12)]
    eight = [g.text for g in HFBackend(model, tok, batch_size=8).generate(prompts, 12)]
    assert one == eight
