"""QLoRA: the base loaded in 4-bit NF4 with double quantisation (bitsandbytes, CUDA only), LoRA on top."""

from __future__ import annotations

from driftlab.errors import DriftlabError
from driftlab.train.methods import METHODS, Method
from driftlab.train.methods.lora import LoraOptions, lora_config, save_adapter


def quantization_config(cfg):
    """4-bit NF4 + double quantisation, or one clear error where it cannot run (never a silent fallback)."""
    import torch

    if not torch.cuda.is_available():
        raise DriftlabError("train.method=qlora needs a CUDA GPU (bitsandbytes 4-bit kernels); this machine has "
                            "none. Use method=lora here.")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise DriftlabError("train.method=qlora needs bitsandbytes: pip install bitsandbytes") from None
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute)


def prepare(model, cfg):
    from peft import prepare_model_for_kbit_training

    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=bool(cfg.gradient_checkpointing))
    return model, lora_config(model, cfg)


METHODS.register(Method(
    name="qlora", summary="LoRA on a 4-bit NF4 base with double quantisation (CUDA only)", order=30,
    options=LoraOptions, artifact="adapter", prepare=prepare, save=save_adapter, quantization=quantization_config))
