"""SVF — singular-value fine-tuning, the parameter-efficient method of Transformer² (Sun et al. 2025,
arXiv:2501.06252): on each selected weight W = U · diag(s) · Vᵀ only a vector z (one scale per singular value,
initialised to 1) is trained, W' = U · diag(s ⊙ z) · Vᵀ. The artifact is an SVF expert (driftlab.artifacts holds
the format, the decomposition and how an expert is applied at load time; train/svf_layer.py the trainable layer).

Transformer² trains z with REINFORCE; driftlab trains it with the same supervised loss (TRL's SFTTrainer) as every
other method, so the methods differ only in what they may change.
"""

from __future__ import annotations

from driftlab.runs import is_main_process
from driftlab.train.methods import METHODS, Method, selected_linears


def prepare(model, cfg):
    from driftlab.train.svf_layer import apply_svf

    apply_svf(model, selected_linears(model, cfg))
    return model, None


def save(trainer, tokenizer, cfg, path, base) -> None:
    from driftlab.train.svf_layer import save_expert

    if is_main_process():
        save_expert(trainer.model, path, {"base_fingerprint": base.fingerprint})


METHODS.register(Method(
    name="svf", summary="Transformer² singular-value scales on the selected modules (parameter isolation)", order=50,
    artifact="expert", prepare=prepare, save=save, shardable=False, broadcast_buffers=False))
