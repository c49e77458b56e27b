"""The HF backend on a tiny random Qwen3: loglik against a hand computation, greedy batch-size invariance."""

import torch

from driftlab.eval.backend import HFBackend
from driftlab.models import ResolvedModel, load_model


def _backend(tiny_model_dir, batch_size):
    model, tok = load_model(ResolvedModel("tiny", str(tiny_model_dir), "x"))
    return HFBackend(model, tok, batch_size=batch_size), model, tok


def test_loglik_matches_manual_computation(tiny_model_dir):
    backend, model, tok = _backend(tiny_model_dir, batch_size=3)
    prompts, choices = ["What is 12 + 34?", "Capital of France?"], [["46", "47", "5"], ["Paris", "Rome"]]
    scores = backend.loglik(prompts, choices)
    ctx = tok(backend.chat(prompts[1]), add_special_tokens=False).input_ids
    cont = tok("Rome", add_special_tokens=False).input_ids
    with torch.no_grad():
        logp = model(torch.tensor([ctx + cont])).logits[0].log_softmax(-1)
    manual = sum(logp[len(ctx) - 1 + i, t].item() for i, t in enumerate(cont))
    assert abs(scores[1][1] - manual) < 1e-4
    assert [len(s) for s in scores] == [3, 2]


def test_greedy_does_not_depend_on_batch_size(tiny_model_dir):
    prompts = [f"What is {a} + {b}?" + " please" * (a % 4) for a, b in [(1, 2), (30, 4), (55, 61), (7, 8), (9, 90)]]
    outs = {}
    for bs in (1, 2, 5):
        backend, _, _ = _backend(tiny_model_dir, bs)
        outs[bs] = [g.text for g in backend.generate(prompts, max_new_tokens=8)]
    assert outs[1] == outs[2] == outs[5]


def test_thinking_flag_reaches_the_template(tiny_model_dir):
    model, tok = load_model(ResolvedModel("tiny", str(tiny_model_dir), "x"))
    assert "<think>" in HFBackend(model, tok, enable_thinking=False).chat("hi")
    assert "<think>" not in HFBackend(model, tok).chat("hi")
