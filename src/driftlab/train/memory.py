"""GPU training settings chosen from what fits: activation checkpointing only when the step would not fit in free
memory without it, and then on as few decoder layers as fit (transformers' `every_n_layers`: one layer in n
recomputed), Liger's kernels only where they pay. Pure functions of the model's shape, the batch and the free
memory, so the choice is unit-tested on a CPU and printed with its reason.

What was measured (issue 21: one H200, Qwen3-4B shape, bf16, LoRA r16 on all linear layers, batch 4 × 1,024
tokens): checkpointing off ran 1.6-2.0× faster than on; Liger's kernels (TRL's SFTTrainer patches the layers' norm,
SwiGLU and RoPE kernels; it keeps its own chunked loss) sped the step up with checkpointing off (TRL 10,275 → 13,800
tokens/s) and slowed it with checkpointing on (driftlab 6,480 → 5,115), so Liger goes with checkpointing off only.
Peak memory there: 28.7 GiB without checkpointing or Liger, 9.7 GiB with checkpointing alone, 9.5 GiB with both;
`peak_bytes` gives 24.4, 9.1 and 9.1 (within 20%; tests/unit/test_memory.py).

The estimate (bytes, bf16 activations, an attention kernel that does not keep the score matrix):
  weights         params × bytes per parameter (the load dtype's; 0.5 for QLoRA's 4-bit weights), plus `extra`
                  (what a method adds: SVF's fp32 singular vectors, GRPO's synced copy of the policy)
  trainable       trainable params × 16 (fp32 master copy, gradient and two AdamW moments)
  activations     per token and layer, the tensors backward needs: ~12·hidden (attention: norms, q/k/v/o inputs
                  and outputs) + 3·intermediate (SwiGLU: gate, up, their product), 2 bytes each (Korthikanti et al.
                  2022 count 34·hidden bytes for a 4·hidden GeLU MLP; this is that count for SwiGLU); a checkpointed
                  layer keeps its input only, plus one layer's activations while it is recomputed
  logits          not counted: the loss is taken in chunks over the labelled (completion) positions only
"""

from __future__ import annotations

from dataclasses import dataclass

HEADROOM = 0.85  # share of the free memory a plan may fill: the allocator fragments, the CUDA context takes some
GIB = 2 ** 30


@dataclass(frozen=True)
class Shape:
    """What the estimate needs of a decoder-only model (from its config)."""
    params: int
    hidden: int
    layers: int
    intermediate: int
    vocab: int

    @classmethod
    def from_config(cls, config, params: int) -> Shape:
        """Reads the names transformers' configs use; an MLP width under another name falls back to 4·hidden (a
        mixture of experts counts the experts a token is routed to)."""
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        hidden = getattr(text, "hidden_size", None) or getattr(text, "n_embd", None) or getattr(text, "d_model")
        layers = (getattr(text, "num_hidden_layers", None) or getattr(text, "n_layer", None)
                  or getattr(text, "num_layers"))
        width = getattr(text, "intermediate_size", None) or getattr(text, "ffn_dim", None) or 4 * hidden
        if getattr(text, "moe_intermediate_size", None) and getattr(text, "num_experts_per_tok", None):
            width = text.moe_intermediate_size * text.num_experts_per_tok
        return cls(params=params, hidden=hidden, layers=layers, intermediate=width, vocab=text.vocab_size)


def peak_bytes(shape: Shape, tokens: int, trainable: int, checkpointing: bool, bytes_per_param: float = 2,
               extra: int = 0, every_n_layers: int = 1) -> int:
    """The training step's peak memory, estimated (module docstring); `tokens` = batch × sequence length. With
    checkpointing, one decoder layer in `every_n_layers` is recomputed (1: all)."""
    per_layer = 2 * tokens * (12 * shape.hidden + 3 * shape.intermediate)
    recomputed = checkpointed_layers(shape.layers, every_n_layers) if checkpointing else 0
    activations = per_layer * (shape.layers - recomputed)
    if recomputed:
        activations += 2 * tokens * shape.hidden * recomputed + per_layer
    return int(shape.params * bytes_per_param) + extra + trainable * 16 + activations


def checkpointed_layers(layers: int, every_n_layers: int) -> int:
    """How many of `layers` transformers checkpoints at `every_n_layers` (layer i when i % n == 0)."""
    return -(-layers // every_n_layers)


@dataclass(frozen=True)
class Plan:
    gradient_checkpointing: bool
    liger: bool
    reason: str
    every_n_layers: int = 1  # with checkpointing: one decoder layer in n recomputed


def gpu_plan(shape: Shape, tokens: int, trainable: int, free: int, liger_available: bool,
             checkpointing: bool | None = None, liger: bool | None = None, bytes_per_param: float = 2,
             extra: int = 0, partial: bool = True, cap: int | None = None) -> Plan:
    """Checkpointing and Liger for a GPU run. A setting the user gave (not None) is kept (checkpointing: every
    layer); otherwise checkpointing is off when the step fits in HEADROOM × `free` without it, else on for the
    fewest layers that fit (the largest `every_n_layers`; all when none fits, and without `partial`: TRL's GRPO
    re-enables checkpointing around generation without every_n_layers, so there it is every layer), and Liger is on
    exactly when checkpointing is off and it is installed (`liger_available`; False where the trainer does not take it, GRPO's).
    `cap` (bytes, train.gpu_memory_gib) bounds the budget below HEADROOM × `free`."""
    def need(ckpt: bool, n: int = 1) -> int:
        return peak_bytes(shape, tokens, trainable, ckpt, bytes_per_param, extra, n)

    capped = cap is not None and cap <= HEADROOM * free
    budget = cap if capped else HEADROOM * free
    room = (f"the {cap / GIB:.1f} GiB of train.gpu_memory_gib" if capped
            else f"{HEADROOM:.0%} of the {free / GIB:.1f} GiB free")
    every = 1
    if checkpointing is None:
        checkpointing = need(False) > budget
        if checkpointing and partial:  # the largest n that fits: the fewest layers recomputed
            every = next((n for n in range(shape.layers, 1, -1) if need(True, n) <= budget), 1)
        k = checkpointed_layers(shape.layers, every)
        why = (f"checkpointing {'off' if not checkpointing else f'{k} of {shape.layers} layers'}: the step needs "
               f"~{need(False) / GIB:.1f} GiB without it, {'over' if checkpointing else 'within'} {room}"
               + (f" (~{need(True, every) / GIB:.1f} GiB with it)" if checkpointing else ""))
    else:
        why = f"checkpointing {'on' if checkpointing else 'off'}: train.gradient_checkpointing"
    if liger is None:
        liger = liger_available and not checkpointing
        why += ("; Liger on: its kernels pay without checkpointing" if liger else
                "; Liger off: " + ("not installed or not taken here" if not liger_available else
                                   "it slowed checkpointed steps"))
    else:
        why += f"; Liger {'on' if liger else 'off'}: train.liger"
    return Plan(checkpointing, liger, why, every)


def fallback_plan(cfg_checkpointing: bool | None, cfg_liger: bool | None, why: str) -> Plan:
    """Where no estimate can be made (an unusual config): checkpointing on and Liger off unless set, as before
    plans existed; `why` says what failed."""
    ckpt = True if cfg_checkpointing is None else cfg_checkpointing
    return Plan(ckpt, bool(cfg_liger), f"checkpointing {'on' if ckpt else 'off'}, Liger "
                f"{'on' if cfg_liger else 'off'}: no memory estimate ({why})")
