"""The trainable form of an SVF expert (train/methods/svf.py): a Linear layer whose weight is U · diag(s ⊙ z) · Vᵀ
with only z trainable, and the expert written from it (driftlab.artifacts holds the format). Kept apart from the
method's registration so that reading the registry does not import torch."""

from __future__ import annotations

import torch
from torch import nn

from driftlab.artifacts import decompose, save_vectors


class SVFLinear(nn.Module):
    """A Linear layer whose weight is U · diag(s ⊙ z) · Vᵀ with only z trainable."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        u, s, vt = decompose(linear.weight)
        # float32 factors whatever the model's dtype: a bf16 copy of U, s, Vᵀ would move W' away from W at z = 1 by
        # more than the usual rounding. Non-persistent: recomputed from the base weights, never saved in a checkpoint.
        self.register_buffer("u", u, persistent=False)
        self.register_buffer("s", s, persistent=False)
        self.register_buffer("vt", vt, persistent=False)
        self.z = nn.Parameter(torch.ones_like(s))
        self.bias = linear.bias
        if self.bias is not None:
            self.bias.requires_grad_(False)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def weight(self) -> torch.Tensor:
        # One (out × r) · (r × in) product per forward: cheaper than two thin matmuls once a batch has more tokens
        # than the matrix has rows. Under bf16 autocast this product runs in bf16 like every other layer's matmul
        # (forcing it to fp32 was slower: benchmarks/NOTES.md); the factors themselves stay fp32.
        return (self.u * (self.s * self.z)) @ self.vt

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight().to(x.dtype), self.bias)


def apply_svf(model: nn.Module, names: list[str]) -> dict[str, SVFLinear]:
    """Replace the named Linear modules by SVFLinear (in place); freeze everything else. Returns name -> module."""
    for p in model.parameters():
        p.requires_grad_(False)
    wrapped = {}
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        module = SVFLinear(getattr(parent, child))
        setattr(parent, child, module)
        wrapped[name] = module
    return wrapped


def svf_modules(model: nn.Module) -> dict[str, SVFLinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, SVFLinear)}


def save_expert(model: nn.Module, out_dir, meta: dict | None = None):
    vectors = {name: m.z.detach().float().cpu().contiguous() for name, m in svf_modules(model).items()}
    return save_vectors(vectors, out_dir, meta)
