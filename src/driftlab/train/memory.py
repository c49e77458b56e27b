"""GPU training settings chosen from what fits: activation checkpointing only when the step would not fit in free
memory without it, Liger's fused kernels only where they pay. Pure functions of the model's shape, the batch and
the free memory, so the choice is unit-tested on a CPU and printed with its reason.

What was measured (issue 21: one H200, Qwen3-4B shape, bf16, LoRA r16 on all linear layers, batch 4 × 1,024
tokens): checkpointing off ran 1.6-2.0× faster than on; Liger's fused linear + cross-entropy sped the step up with
checkpointing off (TRL 10,275 → 13,800 tokens/s) and slowed it with checkpointing on (driftlab 6,480 → 5,115), so
Liger goes with checkpointing off only. Peak memory there: 28.7 GiB without checkpointing or Liger, 9.7 GiB with
checkpointing alone, 9.5 GiB with both; `peak_bytes` gives 26.8, 11.5 and 9.1 (within 20%; tests/unit/test_memory.py).

The estimate (bytes, bf16 activations, an attention kernel that does not keep the score matrix):
  weights         params × bytes per parameter (2 in bf16, 0.5 for QLoRA's 4-bit weights)
  trainable       trainable params × 16 (fp32 master copy, gradient and two AdamW moments)
  activations     per token and layer, the tensors backward needs: ~12·hidden (attention: norms, q/k/v/o inputs
                  and outputs) + 3·intermediate (SwiGLU: gate, up, their product), 2 bytes each (Korthikanti et al.
                  2022 count 34·hidden bytes for a 4·hidden GeLU MLP; this is that count for SwiGLU); with
                  checkpointing, one layer's input per layer plus one layer's activations during recompute
  logits          tokens × vocab × 4 bytes (the fp32 logits the loss reads), none with Liger's fused loss
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
        text = getattr(config, "text_config", None) or config
        return cls(params=params, hidden=text.hidden_size, layers=text.num_hidden_layers,
                   intermediate=text.intermediate_size, vocab=text.vocab_size)


def peak_bytes(shape: Shape, tokens: int, trainable: int, checkpointing: bool, fused_loss: bool,
               bytes_per_param: float = 2) -> int:
    """The training step's peak memory, estimated (module docstring); `tokens` = batch × sequence length."""
    per_layer = 2 * tokens * (12 * shape.hidden + 3 * shape.intermediate)
    if checkpointing:
        activations = 2 * tokens * shape.hidden * shape.layers + per_layer
    else:
        activations = per_layer * shape.layers
    logits = 0 if fused_loss else tokens * shape.vocab * 4
    return int(shape.params * bytes_per_param) + trainable * 16 + activations + logits


@dataclass(frozen=True)
class Plan:
    gradient_checkpointing: bool
    liger: bool
    reason: str


def gpu_plan(shape: Shape, tokens: int, trainable: int, free: int, liger_available: bool,
             checkpointing: bool | None = None, liger: bool | None = None, bytes_per_param: float = 2) -> Plan:
    """Checkpointing and Liger for a GPU run. A setting the user gave (not None) is kept; otherwise checkpointing
    is off when the step fits in HEADROOM × `free` without it (with Liger's fused loss where it is installed, since
    it goes with checkpointing off), and Liger is on exactly when checkpointing is off and it is installed."""
    def need(ckpt: bool, fused: bool) -> int:
        return peak_bytes(shape, tokens, trainable, ckpt, fused, bytes_per_param)

    budget = HEADROOM * free
    if checkpointing is None:
        fused = liger if liger is not None else liger_available
        checkpointing = need(False, fused) > budget
        why = (f"checkpointing {'on' if checkpointing else 'off'}: the step needs ~{need(False, fused) / GIB:.1f} GiB "
               f"without it, {'over' if checkpointing else 'within'} {HEADROOM:.0%} of the {free / GIB:.1f} GiB free"
               + (f" (~{need(True, fused) / GIB:.1f} GiB with it)" if checkpointing else ""))
    else:
        why = f"checkpointing {'on' if checkpointing else 'off'}: train.gradient_checkpointing"
    if liger is None:
        liger = liger_available and not checkpointing
        why += ("; Liger on: fused kernels pay without checkpointing" if liger else
                "; Liger off: " + ("not installed" if not liger_available else "it slowed checkpointed steps"))
    else:
        why += f"; Liger {'on' if liger else 'off'}: train.liger"
    return Plan(checkpointing, liger, why)
