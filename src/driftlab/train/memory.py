"""GPU training settings chosen from what fits: each forward/backward pass holds the fewest rows of the batch that
still keep the GPU's matrix units busy (micro-batches: gradient accumulation over fewer rows, the same optimizer
step), without activation checkpointing when that fits in free memory; else checkpointing on as few decoder layers
as fit (transformers' `every_n_layers`: one layer in n recomputed). Liger's kernels only where they pay. Pure
functions of the model's shape, the batch and the free memory, so the choice is unit-tested on a CPU and printed with
its reason.

What was measured (issue 21: one H200, Qwen3-4B shape, bf16, LoRA r16 on all linear layers, batch 4 × 1,024
tokens): checkpointing off ran 1.6-2.0× faster than on (with frozen base weights backward costs about one forward,
so recomputing every layer adds ~half a step); Liger's kernels (TRL's SFTTrainer patches the layers' norm, SwiGLU
and RoPE kernels; it keeps its own chunked loss) sped the step up with checkpointing off (driftlab 10,778 → 12,610
tokens/s, TRL 10,275 → 13,800) and slowed it with checkpointing on (driftlab 6,480 → 5,115), so Liger goes with
checkpointing off only. Splitting the batch into micro-batches recomputes nothing; it only makes each pass's matrix
products shorter and repeats each pass's fixed costs (the host launching its kernels). Rows beyond what keeps the
GPU busy cost memory and buy no speed, so a pass holds the fewest rows whose tokens × the model's parameters reach
MIN_PASS_WORK (~2,000 tokens of a 4B-parameter model, ~60,000 of a 135M one: a small model's batch is not split), and
never fewer than MIN_MICRO_TOKENS tokens. Where that pass does not fit, fewer rows still, down to MIN_MICRO_TOKENS
tokens a pass, before any recompute. Both are assumptions, not yet measured on a GPU: the benchmark's
driftlab_whole_batch run times the whole batch in one pass beside the default, `benchmarks/gpu_throughput.py`. What
was measured, on the CPU (`benchmarks/pass_overhead.py`): a LoRA pass through Qwen3-4B's 36 layers at tiny widths
costs ~80 ms and ~12,000 aten ops beyond its arithmetic — on a GPU about as many kernel launches, against ~160 ms of
GPU time for 2,048 tokens of Qwen3-4B if the H200's whole-batch step (325 ms for 4,096 tokens) halves.

The estimate (bytes):
  weights         params × bytes per parameter (the load dtype's; 0.5 for QLoRA's 4-bit weights), plus `extra`
                  (what a method adds: SVF's fp32 singular vectors, GRPO's synced copy of the policy)
  trainable       trainable params × 16 (fp32 master copy, gradient and two AdamW moments)
  activations     per token and decoder layer, the tensors backward keeps (`layer_bytes`: counted with saved-tensor
                  hooks on a CPU for transformers' Qwen3 layer under PEFT LoRA, tests/unit/test_memory.py; Liger's
                  kernels, which need Triton, from what their autograd functions save in liger-kernel 0.8.5); a
                  checkpointed layer keeps its input only; plus one layer's worth for backward's working set (the
                  recomputed layer's activations, or the gradients of the layer being differentiated)
  logits          not counted: the loss is taken in chunks over the labelled (completion) positions only
Against the four H200 peaks (which predate `sft._uncast_adapter_inputs`: PEFT's input casts then kept 23.5 KB more
per token and layer, added back for the comparison) it is 3.6-6.6% under: tests/unit/test_memory.py. HEADROOM covers
that.
"""

from __future__ import annotations

from dataclasses import dataclass

HEADROOM = 0.85  # share of the free memory a plan may fill: the allocator fragments, the CUDA context takes some
GIB = 2 ** 30
# the least work a pass the plan splits off holds, in tokens × model parameters (module docstring)
MIN_PASS_WORK = 8 * 10**12  # ~2,000 tokens of a 4B-parameter model
MIN_MICRO_TOKENS = 2048  # the fewest tokens a pass split off further, for memory, may hold (module docstring)


@dataclass(frozen=True)
class Shape:
    """What the estimate needs of a decoder-only model (from its config)."""
    params: int
    hidden: int
    layers: int
    intermediate: int
    vocab: int
    heads: int = 0  # attention heads (0: unknown, the queries taken as `hidden` wide)
    kv_heads: int = 0  # key/value heads (0: as many as `heads`)
    head_dim: int = 0
    qk_norm: bool = False  # an RMSNorm on each head's query and key (Qwen3, OLMo 2)

    @property
    def q(self) -> int:
        """Width of the queries (and of the attention's output)."""
        return self.heads * self.head_dim if self.heads and self.head_dim else self.hidden

    @property
    def kv(self) -> int:
        """Width of the keys (and of the values)."""
        return self.kv_heads * self.head_dim if self.kv_heads and self.head_dim else self.q

    @classmethod
    def from_config(cls, config, params: int, qk_norm: bool = False) -> Shape:
        """Reads the names transformers' configs use; an MLP width under another name falls back to 4·hidden (a
        mixture of experts counts the experts a token is routed to)."""
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        hidden = getattr(text, "hidden_size", None) or getattr(text, "n_embd", None) or getattr(text, "d_model")
        layers = (getattr(text, "num_hidden_layers", None) or getattr(text, "n_layer", None)
                  or getattr(text, "num_layers"))
        width = getattr(text, "intermediate_size", None) or getattr(text, "ffn_dim", None) or 4 * hidden
        if getattr(text, "moe_intermediate_size", None) and getattr(text, "num_experts_per_tok", None):
            width = text.moe_intermediate_size * text.num_experts_per_tok
        heads = getattr(text, "num_attention_heads", None) or getattr(text, "n_head", None) or 0
        kv_heads = getattr(text, "num_key_value_heads", None) or heads
        head_dim = getattr(text, "head_dim", None) or (hidden // heads if heads else 0)
        return cls(params=params, hidden=hidden, layers=layers, intermediate=width, vocab=text.vocab_size,
                   heads=heads, kv_heads=kv_heads, head_dim=head_dim, qk_norm=qk_norm)


def layer_bytes(shape: Shape, liger: bool = False) -> int:
    """Bytes one decoder layer keeps for backward per token, bf16 activations, frozen base weights (a frozen linear
    keeps no input of its own; a LoRA adapter or a trained weight keeps the one its layer's other users keep), an
    attention kernel that keeps no score matrix. transformers' RMSNorm keeps its input in float32; Liger's keeps it
    in the input's dtype. transformers' SwiGLU keeps gate, up and silu(gate); Liger's recomputes silu(gate)."""
    h, i, q, kv = shape.hidden, shape.intermediate, shape.q, shape.kv
    heads, kv_heads = max(1, shape.heads), max(1, shape.kv_heads or shape.heads)
    normed = 2 * h + (q + kv if shape.qk_norm else 0)  # elements each token passes through an RMSNorm
    rows = 2 + (heads + kv_heads if shape.qk_norm else 0)  # RMSNorm rows: one fp32 rstd each
    return ((2 if liger else 4) * normed  # the norms' inputs
            + 2 * 2 * h  # the two norms' outputs: the inputs of q/k/v and of gate/up
            + 2 * (2 * q + 2 * kv)  # attention's q, k, v and output (o_proj's input)
            + 2 * (3 if liger else 4) * i  # SwiGLU: gate, up, (silu(gate)), their product (down_proj's input)
            + 4 * rows + 4 * heads)  # the norms' rstd, attention's logsumexp


def peak_bytes(shape: Shape, tokens: int, trainable: int, checkpointing: bool, bytes_per_param: float = 2,
               extra: int = 0, every_n_layers: int = 1, liger: bool = False) -> int:
    """The training step's peak memory, estimated (module docstring); `tokens` = the tokens of one forward/backward
    pass (micro-batch rows × sequence length). With checkpointing, one decoder layer in `every_n_layers` is
    recomputed (1: all)."""
    per_layer = tokens * layer_bytes(shape, liger)
    recomputed = checkpointed_layers(shape.layers, every_n_layers) if checkpointing else 0
    activations = per_layer * (shape.layers - recomputed) + 2 * tokens * shape.hidden * recomputed + per_layer
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
    micro_batch: int | None = None  # rows per forward/backward pass (the rest accumulated); None: the whole batch


def pass_rows(rows: int, row_tokens: int, params: int) -> int:
    """Rows of each forward/backward pass where memory allows: the fewest that divide `rows` and hold at least
    MIN_PASS_WORK (tokens × `params`) and MIN_MICRO_TOKENS tokens; all of them when no fewer do. Tokens are counted
    by the longest row (with padding-free batches a pass may hold fewer)."""
    return next(m for m in range(1, rows + 1) if rows % m == 0 and (
        m == rows or (m * row_tokens * params >= MIN_PASS_WORK and m * row_tokens >= MIN_MICRO_TOKENS)))


def micro_batches(rows: int, row_tokens: int, params: int) -> list[int]:
    """Rows per pass the plan may choose, most first: `pass_rows`, then the fewer that divide `rows` and hold at
    least MIN_MICRO_TOKENS tokens (for memory: slower passes, but no recompute)."""
    first = pass_rows(rows, row_tokens, params)
    return [first] + [m for m in range(first - 1, 0, -1) if rows % m == 0 and m * row_tokens >= MIN_MICRO_TOKENS]


def gpu_plan(shape: Shape, rows: int, row_tokens: int, trainable: int, free: int, liger_available: bool,
             checkpointing: bool | None = None, liger: bool | None = None, bytes_per_param: float = 2,
             extra: int = 0, partial: bool = True, cap: int | None = None, micro_batch: int | None = None,
             split: bool = True) -> Plan:
    """Checkpointing, micro-batches and Liger for a GPU run of `rows` rows of `row_tokens` tokens a batch.

    Each pass takes `pass_rows` of the batch where it fits (the fewest rows that keep the GPU busy); where it does
    not, the most of `micro_batches` (fewer rows) that fits. With `micro_batch` given, that many; without `split`,
    the whole batch. Unset (None) by the user, checkpointing is off when one of those fits in HEADROOM × `free`
    without it; else the fewest micro-batch rows are taken with the fewest layers recomputed that fit (the largest
    `every_n_layers`; all when none fits, and without `partial`: TRL's GRPO re-enables checkpointing around
    generation without every_n_layers, so there it is every layer). Set to true (the memory-saving setting): every
    layer recomputed, on the fewest rows. Set to false: the most rows that fit, else the fewest. Liger is on exactly
    when checkpointing is off and it is installed (`liger_available`; False where the trainer does not take it,
    GRPO's), unless set. `cap` (bytes, train.gpu_memory_gib) bounds the budget below HEADROOM × `free`."""
    def liger_with(ckpt: bool) -> bool:
        return liger if liger is not None else liger_available and not ckpt

    def need(ckpt: bool, m: int, n: int = 1) -> int:
        return peak_bytes(shape, m * row_tokens, trainable, ckpt, bytes_per_param, extra, n, liger_with(ckpt))

    capped = cap is not None and cap <= HEADROOM * free
    budget = cap if capped else HEADROOM * free
    room = (f"the {cap / GIB:.1f} GiB of train.gpu_memory_gib" if capped
            else f"{HEADROOM:.0%} of the {free / GIB:.1f} GiB free")
    sizes = [micro_batch] if micro_batch else micro_batches(rows, row_tokens, shape.params) if split else [rows]
    fits = [m for m in sizes if need(False, m) <= budget]
    every, micro = 1, (fits or sizes[-1:])[0]
    if checkpointing is None:
        checkpointing = not fits
        if checkpointing:
            micro = sizes[-1]
            if partial:  # the largest n that fits: the fewest layers recomputed
                every = next((n for n in range(shape.layers, 1, -1) if need(True, micro, n) <= budget), 1)
        k = checkpointed_layers(shape.layers, every)
        why = (f"checkpointing {f'{k} of {shape.layers} layers' if checkpointing else 'off'}{_split(micro, rows)}: "
               f"the step needs ~{need(False, micro) / GIB:.1f} GiB without it, "
               f"{'over' if checkpointing else 'within'} {room}")
        if checkpointing:
            why += f" (~{need(True, micro, every) / GIB:.1f} GiB as planned)"
    else:
        micro = sizes[-1] if checkpointing else micro
        planned = need(checkpointing, micro)
        why = (f"checkpointing {'on' if checkpointing else 'off'}: train.gradient_checkpointing{_split(micro, rows)}"
               f" (~{planned / GIB:.1f} GiB{'' if planned <= budget else f', over {room}: it may not fit'})")
    if micro != rows and not micro_batch:  # why these rows, and what the split spares
        first = sizes[0]
        whole = f"the whole batch in one pass: ~{need(False, rows) / GIB:.1f} GiB without checkpointing"
        busy = f"{first * row_tokens:,} tokens a pass, the fewest the plan takes for a model this size"
        why += ("; " + (f"{busy} ({whole})" if micro == first else whole.replace(":", " would need") if first == rows
                        else f"{busy}, would need ~{need(False, first) / GIB:.1f} GiB without it ({whole})"))
    if liger is None:
        liger = liger_with(checkpointing)
        why += ("; Liger on: its kernels pay without checkpointing" if liger else
                "; Liger off: " + ("not installed or not taken here" if not liger_available else
                                   "it slowed checkpointed steps"))
    else:
        why += f"; Liger {'on' if liger else 'off'}: train.liger"
    return Plan(checkpointing, liger, why, every, micro)


def _split(micro: int, rows: int) -> str:
    return (f", micro-batches of {micro} row{'s' if micro > 1 else ''} ({rows // micro} accumulated a step)"
            if micro != rows else "")


def fallback_plan(cfg_checkpointing: bool | None, cfg_liger: bool | None, why: str) -> Plan:
    """Where no estimate can be made (an unusual config): checkpointing on and Liger off unless set, as before
    plans existed; `why` says what failed."""
    ckpt = True if cfg_checkpointing is None else cfg_checkpointing
    return Plan(ckpt, bool(cfg_liger), f"checkpointing {'on' if ckpt else 'off'}, Liger "
                f"{'on' if cfg_liger else 'off'}: no memory estimate ({why})")
