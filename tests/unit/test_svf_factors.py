"""SVF's decomposition cache: one SVD per distinct weight per process, the same factors as a fresh SVD."""

import torch
from torch import nn

from driftlab import artifacts as svf
from driftlab.train.svf_layer import apply_svf


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(12, 20, bias=False), nn.Linear(20, 12, bias=False))


def test_same_weights_are_decomposed_once_and_changed_weights_again(monkeypatch):
    monkeypatch.setattr(svf, "_FACTORS", {})
    calls = []
    real_svd = torch.linalg.svd
    monkeypatch.setattr(torch.linalg, "svd", lambda w, **kw: calls.append(w.shape) or real_svd(w, **kw))
    z = {"0": torch.linspace(0.5, 1.5, 12), "1": torch.linspace(1.5, 0.5, 12)}
    first = svf.apply_expert(_model(0), z)
    second = svf.apply_expert(_model(0), z)  # the same base weights, reloaded: no new SVD
    assert len(calls) == 2
    for a, b in zip(first.parameters(), second.parameters()):
        assert torch.equal(a, b)
    wrapped = apply_svf(_model(0), ["0"])["0"]  # training uses the same factors
    assert len(calls) == 2 and torch.equal(wrapped.u, svf.decompose(_model(0)[0].weight)[0])
    svf.apply_expert(_model(1), z)  # other weights: decomposed anew
    assert len(calls) == 4
    u, s, vt = real_svd(_model(1)[1].weight.float(), full_matrices=False)
    assert all(torch.equal(x, y) for x, y in zip(svf.decompose(_model(1)[1].weight), (u, s, vt)))


def test_factors_over_the_budget_are_not_kept(monkeypatch):
    monkeypatch.setattr(svf, "_FACTORS", {})
    monkeypatch.setattr(svf, "FACTOR_BUDGET_BYTES", 100)  # smaller than one matrix's factors
    svf.apply_expert(_model(0), {"0": torch.ones(12)})
    assert svf._FACTORS == {}
