"""SVF — singular-value fine-tuning, the parameter-efficient method of Transformer² (Sun et al. 2025, arXiv:2501.06252).

Each chosen weight matrix is decomposed once, W = U · diag(s) · Vᵀ, and only a vector z (one scale per singular
value, initialised to 1) is trained: W' = U · diag(s ⊙ z) · Vᵀ. With z = 1 the model is exactly the base model. The
learned vectors are an "expert": a small safetensors file (one z per matrix) plus svf_expert.json. Experts combine
at inference as a weighted sum of their z vectors (`combine_experts`), applied to the base model like one expert.

PEFT has no SVF method, hence this module. Transformer² trains z with REINFORCE; driftlab trains it with the same
supervised loss (TRL's SFTTrainer) as every other method, so the methods differ only in what they may change.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

EXPERT_FILE, EXPERT_META = "svf_expert.safetensors", "svf_expert.json"


# A study decomposes the same base weights up to four times (training, its eval, the drift probe, the sweep); on the
# embedded model one pass over its 210 matrices costs 6.6 s on this project's CPU. Factors are kept per process,
# keyed by the weight's content, within a memory budget (a 4B model's factors would not fit and are recomputed).
_FACTORS: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
FACTOR_BUDGET_BYTES = 2 * 2**30


def decompose(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """U, s, Vᵀ of a weight matrix in float32 (reduced SVD), from the process cache when this exact weight was
    decomposed before. The returned tensors are shared with the cache: callers must not modify them in place."""
    import hashlib

    w = weight.detach().float()
    key = (str(w.device), tuple(w.shape), hashlib.blake2b(w.cpu().numpy().tobytes(), digest_size=16).hexdigest())
    if key in _FACTORS:
        return _FACTORS[key]
    factors = torch.linalg.svd(w, full_matrices=False)
    used = sum(t.numel() * t.element_size() for f in _FACTORS.values() for t in f)
    if used + sum(t.numel() * t.element_size() for t in factors) <= FACTOR_BUDGET_BYTES:
        _FACTORS[key] = tuple(factors)
    return tuple(factors)


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
        # (measured: forcing it to fp32 made SVF steps ~1.5x slower on CPU); the factors themselves stay fp32.
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


def save_expert(model: nn.Module, out_dir: Path, meta: dict | None = None) -> Path:
    vectors = {name: m.z.detach().float().cpu().contiguous() for name, m in svf_modules(model).items()}
    return save_vectors(vectors, out_dir, meta)


def save_vectors(vectors: dict[str, torch.Tensor], out_dir: Path, meta: dict | None = None) -> Path:
    """An expert dir: the z vectors (safetensors) and svf_expert.json, written to a temp dir and renamed."""
    import os
    import shutil

    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in vectors.items()}, str(tmp / EXPERT_FILE))
    (tmp / EXPERT_META).write_text(json.dumps({"method": "svf", "modules": sorted(vectors), **(meta or {})},
                                              indent=2))
    os.replace(tmp, out_dir)
    return out_dir


def load_expert(expert_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(Path(expert_dir) / EXPERT_FILE))


def is_expert(path: Path) -> bool:
    return (Path(path) / EXPERT_META).exists()


def apply_expert(model: nn.Module, vectors: dict[str, torch.Tensor]) -> nn.Module:
    """Base model -> adapted model for inference: each named weight becomes U · diag(s ⊙ z) · Vᵀ, merged back into
    a plain Linear weight (no SVD cost at generation time)."""
    with torch.no_grad():
        for name, z in vectors.items():
            linear = model.get_submodule(name)
            u, s, vt = decompose(linear.weight)
            linear.weight.copy_(((u * (s * z.to(s.device))) @ vt).to(linear.weight.dtype))
    return model


def combine_experts(vectors: list[dict[str, torch.Tensor]], weights: list[float]) -> dict[str, torch.Tensor]:
    """Weighted sum of experts' z vectors, module by module (Transformer²'s linear interpolation of experts)."""
    if len(vectors) != len(weights) or not vectors:
        raise ValueError("one weight per expert, at least one expert")
    names = set(vectors[0])
    for v in vectors[1:]:
        if set(v) != names:
            raise ValueError("experts adapt different modules and cannot be combined")
    return {n: sum(w * v[n] for v, w in zip(vectors, weights)) for n in sorted(names)}
