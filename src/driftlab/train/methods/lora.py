"""LoRA and DoRA through PEFT: low-rank updates on the selected Linear modules; the artifact is a PEFT adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from driftlab.registry import Options
from driftlab.runs import is_main_process
from driftlab.train.methods import METHODS, Method, selected_linears


class LoraOptions(Options):
    lora_r: int = Field(16, ge=1, description="lora/dora/qlora: rank of the update.")
    lora_alpha: int = Field(32, ge=1, description="lora/dora/qlora: scaling numerator (update x alpha / r).")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="lora/dora/qlora: dropout on the adapter's input.")
    adapter_dtype: Literal["float16", "bfloat16", "float32"] = Field(
        "float16", description="lora/dora/qlora: the precision the adapter is saved in. float16 halves the file "
        "against training's float32 and keeps more than merging into a bf16 model does (a tensor outside float16's "
        "range stays float32).")


def lora_config(model, cfg, dora: bool = False):
    from peft import LoraConfig

    opts = cfg.method_options  # lora, dora and qlora read the same three keys
    return LoraConfig(r=opts.lora_r, lora_alpha=opts.lora_alpha, lora_dropout=opts.lora_dropout,
                      target_modules=selected_linears(model, cfg), use_dora=dora, task_type="CAUSAL_LM", bias="none")


# What Trainer.save_model writes beside the adapter: the tokenizer (3.4 MB for SmolLM2). driftlab never reads it
# from an adapter (models.load_tokenizer takes the base model's), so it goes.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "vocab.json", "merges.txt", "added_tokens.json", "tokenizer.model")


def save_adapter(trainer, tokenizer, cfg, path, base) -> None:
    trainer.save_model(str(path))  # every rank: under FSDP/ZeRO-3 it gathers the shards, rank 0 writes
    if is_main_process():
        for name in TOKENIZER_FILES:
            (Path(path) / name).unlink(missing_ok=True)
        cast_adapter(Path(path) / "adapter_model.safetensors", cfg.method_options.adapter_dtype)


MAX_CAST_ERROR = 1e-3  # relative (Frobenius) error a tensor may take from being stored in a smaller dtype


def cast_adapter(file: Path, dtype: str) -> None:
    """The adapter's low-rank factors in `dtype`, rewritten in place (temp file + rename); PEFT saves in the
    training dtype and has no option for another. Kept float32: DoRA's magnitude vectors (they scale the whole
    layer's output, not only the update) and a tensor `dtype` would overflow or change by more than MAX_CAST_ERROR of
    its norm (float16's rounding alone is ~2e-4; entries flushed to 0 en masse would exceed it; a lone tiny entry
    flushed does not)."""
    import torch
    from safetensors.torch import load_file, save_file

    if dtype == "float32" or not file.exists():
        return
    target = getattr(torch, dtype)

    def keeps(name: str, t) -> bool:
        if t.dtype != torch.float32 or "magnitude" in name:
            return True
        cast = t.to(target)
        if not torch.isfinite(cast).all():
            return True
        norm = t.norm()
        return bool(norm > 0 and (cast.float() - t).norm() > MAX_CAST_ERROR * norm)

    tensors = {k: (v if keeps(k, v) else v.to(target)) for k, v in load_file(file).items()}
    tmp = file.with_name(file.name + ".tmp")
    save_file(tensors, tmp, metadata={"format": "pt"})
    tmp.replace(file)


METHODS.register(Method(
    name="lora", summary="LoRA (PEFT) on the selected Linear modules", order=10, options=LoraOptions,
    artifact="adapter", prepare=lambda model, cfg: (model, lora_config(model, cfg)), save=save_adapter))
METHODS.register(Method(
    name="dora", summary="DoRA (PEFT: LoRA with a learned magnitude per output) on the selected Linear modules",
    order=20, options=LoraOptions, artifact="adapter",
    prepare=lambda model, cfg: (model, lora_config(model, cfg, dora=True)), save=save_adapter))
