"""evaluate_suite with a scripted backend: scoring paths, records and metrics, without a model."""

from driftlab.config import DataConfig, EvalConfig, SuiteConfig
from driftlab.data import build_data
from driftlab.eval.backend import Generation
from driftlab.eval.run import evaluate_suite
from tests.conftest import ARITH


class ScriptedBackend:
    def __init__(self, replies):
        self.replies = replies

    def chat(self, prompt):
        return prompt

    def generate(self, prompts, max_new_tokens, stop=None, shared_prefix=""):
        return [Generation(self.replies(p), 3, "stop", 0.01 * (i + 1)) for i, p in enumerate(prompts)]

    def loglik(self, prompts, choices, shared_prefix=""):
        return [[0.0] * len(c) for c in choices]


def _bundle(heldout):
    return build_data(DataConfig(target={**ARITH, "size": 4, "train_size": 4}, heldout=heldout), seed=0)


def test_reasoning_gym_scorer_and_thinking_fields():
    suite = {"name": "fam", "source": "reasoning_gym", "task": "family_relationships", "scorer": "reasoning_gym",
             "size": 6}
    items = _bundle([suite]).suites["fam"]
    gold = {it["prompt"]: it["answer"] for it in items}
    backend = ScriptedBackend(lambda p: f"<think>who is who</think>Answer: {gold[p].upper()}")
    records, metrics = evaluate_suite(backend, items, SuiteConfig(**suite), EvalConfig())
    assert metrics["accuracy"] == 1.0 and metrics["format_rate"] == 1.0
    assert records[0]["reason"] == "reasoning-gym score_answer = 1" and records[0]["thinking_chars"] == 10
    assert metrics["latency_p95_s"] >= metrics["latency_p50_s"]


def test_truncated_thinking_is_never_scored():
    items = _bundle([]).suites["arithmetic"]
    backend = ScriptedBackend(lambda p: "<think>the answer is " + p)
    records, metrics = evaluate_suite(backend, items, SuiteConfig(**{**ARITH, "size": 4}), EvalConfig())
    assert metrics["accuracy"] == 0.0 and metrics["thinking_truncated_rate"] == 1.0
    assert all(r["extracted"] is None and r["method"] == "truncated_thinking" for r in records)


def test_choice_suite_renders_lettered_options(jsonl_file):
    path = jsonl_file([{"question": "Capital of France?", "answer": "Paris", "choices": ["Rome", "Paris"]}])
    suite = {"name": "mc", "source": "jsonl", "path": str(path), "scorer": "choice", "extraction": "lenient",
             "template": "{question}\n{choices}\nReply with a letter."}
    items = _bundle([suite]).suites["mc"]
    assert items[0]["prompt"] == "Capital of France?\nA) Rome\nB) Paris\nReply with a letter."
    records, metrics = evaluate_suite(ScriptedBackend(lambda p: "B"), items, SuiteConfig(**suite), EvalConfig())
    assert metrics["accuracy"] == 1.0 and records[0]["reason"] == "chose 'Paris'"
    strict = SuiteConfig(**{**suite, "extraction": "strict"})  # a bare letter is no explicit answer
    records, metrics = evaluate_suite(ScriptedBackend(lambda p: "B"), items, strict, EvalConfig())
    assert metrics["accuracy"] == 0.0 and metrics["format_rate"] == 0.0
    records, _ = evaluate_suite(ScriptedBackend(lambda p: "Answer: B"), items, strict, EvalConfig())
    assert records[0]["correct"]
