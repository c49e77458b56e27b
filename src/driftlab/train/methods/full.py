"""Full fine-tuning: every weight trainable, or only the selected modules' weights when train.layers or
train.target_modules restrict it; the artifact is a whole checkpoint (weights + tokenizer)."""

from __future__ import annotations

from driftlab.runs import is_main_process
from driftlab.train.methods import METHODS, Method, selected_linears


def prepare(model, cfg):
    if cfg.target_modules == "all-linear" and not cfg.layers:
        for p in model.parameters():
            p.requires_grad_(True)
    else:
        keep = set(selected_linears(model, cfg))
        for name, p in model.named_parameters():
            p.requires_grad_(name.rpartition(".")[0] in keep)
    return model, None


def save(trainer, tokenizer, cfg, path, base) -> None:
    trainer.save_model(str(path))  # every rank: under FSDP/ZeRO-3 it gathers the shards, rank 0 writes
    if is_main_process():
        tokenizer.save_pretrained(str(path))


METHODS.register(Method(name="full", summary="all weights, or the selected modules' weights", order=40,
                        artifact="model", prepare=prepare, save=save))
