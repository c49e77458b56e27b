"""Training methods: what a fine-tune may change. One module per method in this package, each registering a
`Method` in METHODS; `train.method` names one, and train/sft.py runs it with TRL's SFTTrainer.

Selection, shared by every method: a module is a candidate when it is a Linear layer inside a decoder block
(`...layers.<i>....`; the LM head and embeddings never are). `train.target_modules` keeps those whose name matches
one of its patterns (regular expressions searched in the full module name, e.g. `q_proj` or `self_attn`;
"all-linear" keeps all) and `train.layers` keeps the blocks in a range ("20-29") or the top k ("top:6").

To add a method: a new module here that calls `METHODS.register(Method(...))` with its name, options (config
keys, read as `train_cfg.method_options`), the artifact kind it writes (driftlab.artifacts) and `prepare`/`save`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from driftlab.errors import ConfigError
from driftlab.registry import Entry, Registry


@dataclass(frozen=True, kw_only=True)
class Method(Entry):
    artifact: str  # what it writes: "adapter" (PEFT), "expert" (SVF) or "model" (full weights); driftlab.artifacts
    prepare: Callable  # (model, train_cfg) -> (model, peft_config or None): freeze, wrap, or leave to PEFT
    save: Callable  # (trainer, tokenizer, train_cfg, path, base ResolvedModel) -> None; called on every rank
    quantization: Callable | None = None  # (train_cfg) -> transformers quantization config for loading the base
    shardable: bool = True  # may run under FSDP / ZeRO-3
    broadcast_buffers: bool = True  # DDP broadcasts module buffers (SVF's factors are identical on every rank)


METHODS: Registry[Method] = Registry("training method", __name__)

BLOCK = re.compile(r"\.layers\.(\d+)\.")


def selected_linears(model, cfg) -> list[str]:
    """Full names of the Linear modules the method may change (see module doc)."""
    from torch import nn

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
