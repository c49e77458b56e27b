"""Stage 2 — train: fine-tune the base model with TRL + PEFT."""

from driftlab.train.lora import train_lora

__all__ = ["train_lora"]
