"""Artifacts: what a fine-tune produced, in the formats both training (which writes them) and loading (which applies
them to a base model) read. One word for all of them: *artifact*.

adapter/  a PEFT adapter (adapter_config.json + safetensors): LoRA, DoRA, QLoRA
expert/   an SVF expert (svf_expert.json + svf_expert.safetensors): one scale vector z per adapted weight matrix
model/    a full checkpoint (config.json + weights + tokenizer): full fine-tuning, or an exported merge

SVF (Transformer², Sun et al. 2025, arXiv:2501.06252) decomposes each chosen weight once, W = U · diag(s) · Vᵀ, and
learns z: W' = U · diag(s ⊙ z) · Vᵀ; with z = 1 the model is exactly the base model. PEFT has no SVF, hence the
format here; the method is train/methods/svf.py, its trainable layer train/svf_layer.py. Experts combine as a
weighted sum of their z vectors.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from driftlab.errors import ModelError

ARTIFACT_DIRS = ("adapter", "expert", "model")  # the names training gives them inside a train run dir
EXPERT_FILE, EXPERT_META = "svf_expert.safetensors", "svf_expert.json"


def artifact_kind(path: Path) -> str | None:
    """'adapter', 'expert' or 'model' for a directory holding one, else None."""
    path = Path(path)
    if (path / "adapter_config.json").exists():
        return "adapter"
    if (path / EXPERT_META).exists():
        return "expert"
    if (path / "config.json").exists():
        return "model"
    return None


def find_artifact(path: Path) -> Path:
    """An artifact dir, or a train run dir holding one (in adapter/, expert/ or model/). Anything else is one clear
    error."""
    path = Path(path)
    for candidate in [path] + [path / d for d in ARTIFACT_DIRS]:
        if artifact_kind(candidate) is not None:
            return candidate
    raise ModelError(f"{path}: no PEFT adapter (adapter_config.json), SVF expert (svf_expert.json) or model "
                     "checkpoint (config.json) there, nor in its adapter/, expert/ or model/ subdir")


def is_expert(path: Path) -> bool:
    return artifact_kind(path) == "expert"


# --- SVF experts -----------------------------------------------------------------------------------------------

# A study decomposes the same base weights several times (training, its eval, the drift probe, the sweep), so
# factors are kept per process, keyed by the weight's content, within a memory budget (a 4B model's factors would
# not fit and are recomputed). What this saves is measured in benchmarks/NOTES.md.
_FACTORS: dict[tuple, tuple] = {}
FACTOR_BUDGET_BYTES = 2 * 2**30


def decompose(weight):
    """U, s, Vᵀ of a weight matrix in float32 (reduced SVD), from the process cache when this exact weight was
    decomposed before. The returned tensors are shared with the cache: callers must not modify them in place."""
    import torch

    w = weight.detach().float()
    key = (str(w.device), tuple(w.shape), hashlib.blake2b(w.cpu().numpy().tobytes(), digest_size=16).hexdigest())
    if key in _FACTORS:
        return _FACTORS[key]
    factors = torch.linalg.svd(w, full_matrices=False)
    used = sum(t.numel() * t.element_size() for f in _FACTORS.values() for t in f)
    if used + sum(t.numel() * t.element_size() for t in factors) <= FACTOR_BUDGET_BYTES:
        _FACTORS[key] = tuple(factors)
    return tuple(factors)


def save_vectors(vectors: dict, out_dir: Path, meta: dict | None = None) -> Path:
    """An expert dir: the z vectors (safetensors) and svf_expert.json, written to a fresh temp dir and renamed."""
    from safetensors.torch import save_file

    from driftlab.runs import atomic_dir

    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        save_file({k: v.contiguous() for k, v in vectors.items()}, str(tmp / EXPERT_FILE))
        (tmp / EXPERT_META).write_text(json.dumps({"method": "svf", "modules": sorted(vectors), **(meta or {})},
                                                  indent=2))
    return out_dir


def load_expert(expert_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(expert_dir) / EXPERT_FILE))


def apply_expert(model, vectors: dict):
    """Base model -> adapted model for inference: each named weight becomes U · diag(s ⊙ z) · Vᵀ, merged back into
    a plain Linear weight (no SVD cost at generation time)."""
    import torch

    with torch.no_grad():
        for name, z in vectors.items():
            linear = model.get_submodule(name)
            u, s, vt = decompose(linear.weight)
            linear.weight.copy_(((u * (s * z.to(s.device))) @ vt).to(linear.weight.dtype))
    return model


def combine_experts(vectors: list[dict], weights: list[float]) -> dict:
    """Weighted sum of experts' z vectors, module by module (Transformer²'s linear interpolation of experts)."""
    if len(vectors) != len(weights) or not vectors:
        raise ValueError("one weight per expert, at least one expert")
    names = set(vectors[0])
    for v in vectors[1:]:
        if set(v) != names:
            raise ValueError("experts adapt different modules and cannot be combined")
    return {n: sum(w * v[n] for v, w in zip(vectors, weights)) for n in sorted(names)}


def combine_expert_dirs(paths: list[Path], weights: list[float] | None, out: Path) -> Path:
    """`driftlab svf-combine`: experts (or train run dirs holding one) of the same base model, weighted (default:
    equally), saved as one new expert at `out` (which must not exist)."""
    dirs = [find_artifact(p) for p in paths]
    if not all(is_expert(d) for d in dirs):
        raise ModelError(f"not SVF experts: {[str(d) for d in dirs if not is_expert(d)]}")
    weights = list(weights or [1 / len(dirs)] * len(dirs))
    if len(weights) != len(dirs):
        raise ModelError(f"{len(dirs)} experts but {len(weights)} --weight values")
    metas = [json.loads((d / EXPERT_META).read_text()) for d in dirs]
    if len({m.get("base_fingerprint") for m in metas}) > 1:
        raise ModelError("the experts were trained on different base models")
    if out.exists():
        raise ModelError(f"{out}: already exists; driftlab never overwrites")
    try:
        combined = combine_experts([load_expert(d) for d in dirs], weights)
    except ValueError as err:
        raise ModelError(str(err)) from None
    return save_vectors(combined, out, {"base_fingerprint": metas[0].get("base_fingerprint"),
                                        "combined_from": [str(d) for d in dirs], "weights": weights})
