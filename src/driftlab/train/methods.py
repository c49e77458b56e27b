"""What each `train.method` changes, and parameter isolation (which blocks and modules may change).

lora / dora   PEFT LoraConfig (use_dora for DoRA) on the selected Linear modules
qlora         the base loaded in 4-bit NF4 with double quantisation (bitsandbytes, CUDA only), LoRA on top
full          every weight trainable, or only the selected modules' weights when layers/modules are restricted
svf           Transformer² singular-value scales on the selected modules (driftlab.train.svf)

Selection: a module is a candidate when it is a Linear layer inside a decoder block (`...layers.<i>....`; the LM
head and embeddings never are). `train.target_modules` keeps those whose name matches one of its patterns
(regular expressions searched in the full module name, e.g. `q_proj` or `self_attn`; "all-linear" keeps all) and
`train.layers` keeps the blocks in a range ("20-29") or the top k ("top:6").
"""

from __future__ import annotations

import re

from torch import nn

from driftlab.config import TrainConfig
from driftlab.errors import ConfigError, DriftlabError

BLOCK = re.compile(r"\.layers\.(\d+)\.")


def selected_linears(model: nn.Module, cfg: TrainConfig) -> list[str]:
    """Full names of the Linear modules the method may change (see module doc)."""
    blocks = sorted({int(m.group(1)) for n, _ in model.named_modules() if (m := BLOCK.search(n + "."))})
    allowed = layer_range(cfg.layers, len(blocks)) if cfg.layers else set(blocks)
    names = []
    for name, module in model.named_modules():
        match = BLOCK.search(name + ".")
        if not isinstance(module, nn.Linear) or match is None or int(match.group(1)) not in allowed:
            continue
        if cfg.target_modules == "all-linear" or any(re.search(p, name) for p in cfg.target_modules):
            names.append(name)
    if not names:
        raise ConfigError(f"train.target_modules={cfg.target_modules!r} with train.layers={cfg.layers!r} selects no "
                          f"Linear module of this model (it has {len(blocks)} blocks)")
    return names


def layer_range(spec: str, n_blocks: int) -> set[int]:
    """'20-29' -> {20..29}; 'top:6' -> the last six blocks; '3' -> {3}."""
    try:
        if spec.startswith("top:"):
            k = int(spec[4:])
            chosen = set(range(max(0, n_blocks - k), n_blocks))
        elif "-" in spec:
            lo, hi = (int(x) for x in spec.split("-"))
            chosen = set(range(lo, hi + 1))
        else:
            chosen = {int(spec)}
    except ValueError:
        raise ConfigError(f"train.layers={spec!r}: expected 'a-b', 'top:k' or a block index") from None
    if not chosen or max(chosen) >= n_blocks or min(chosen) < 0:
        raise ConfigError(f"train.layers={spec!r}: this model has blocks 0-{n_blocks - 1}")
    return chosen


def quantization_config(cfg: TrainConfig):
    """QLoRA's 4-bit NF4 + double quantisation, or one clear error where it cannot run (never a silent fallback)."""
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


def prepare(model: nn.Module, cfg: TrainConfig):
    """Set up `model` for its method: returns (model, peft_config or None)."""
    if cfg.method in ("lora", "dora", "qlora"):
        from peft import LoraConfig

        if cfg.method == "qlora":
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=bool(cfg.gradient_checkpointing))
        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=selected_linears(model, cfg), use_dora=cfg.method == "dora",
                          task_type="CAUSAL_LM", bias="none")
        return model, lora
    if cfg.method == "svf":
        from driftlab.train.svf import apply_svf

        apply_svf(model, selected_linears(model, cfg))
        return model, None
    if cfg.method == "full":
        if cfg.target_modules == "all-linear" and not cfg.layers:
            for p in model.parameters():
                p.requires_grad_(True)
        else:
            keep = set(selected_linears(model, cfg))
            for name, p in model.named_parameters():
                p.requires_grad_(name.rpartition(".")[0] in keep)
        return model, None
    raise ValueError(f"unknown method {cfg.method!r}")  # config validation makes this unreachable
