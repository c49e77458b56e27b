"""LoRA and DoRA through PEFT: low-rank updates on the selected Linear modules; the artifact is a PEFT adapter."""

from __future__ import annotations

from pydantic import Field

from driftlab.registry import Options
from driftlab.train.methods import METHODS, Method, selected_linears


class LoraOptions(Options):
    lora_r: int = Field(16, ge=1, description="lora/dora/qlora: rank of the update.")
    lora_alpha: int = Field(32, ge=1, description="lora/dora/qlora: scaling numerator (update x alpha / r).")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="lora/dora/qlora: dropout on the adapter's input.")


def lora_config(model, cfg, dora: bool = False):
    from peft import LoraConfig

    opts = cfg.method_options  # lora, dora and qlora read the same three keys
    return LoraConfig(r=opts.lora_r, lora_alpha=opts.lora_alpha, lora_dropout=opts.lora_dropout,
                      target_modules=selected_linears(model, cfg), use_dora=dora, task_type="CAUSAL_LM", bias="none")


def save_adapter(trainer, tokenizer, cfg, path, base) -> None:
    trainer.save_model(str(path))  # every rank: under FSDP/ZeRO-3 it gathers the shards, rank 0 writes


METHODS.register(Method(
    name="lora", summary="LoRA (PEFT) on the selected Linear modules", order=10, options=LoraOptions,
    artifact="adapter", prepare=lambda model, cfg: (model, lora_config(model, cfg)), save=save_adapter))
METHODS.register(Method(
    name="dora", summary="DoRA (PEFT: LoRA with a learned magnitude per output) on the selected Linear modules",
    order=20, options=LoraOptions, artifact="adapter",
    prepare=lambda model, cfg: (model, lora_config(model, cfg, dora=True)), save=save_adapter))
