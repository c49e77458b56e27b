"""The LM head and loss of a training step on CPU: logits only at the completion tokens, as one matrix multiply.

TRL's SFTTrainer scores the LM head with its fused, chunked kernel (`ChunkedLogProbFunction`). On CUDA/XPU it keeps
only the positions that carry a label; elsewhere it scores every position (to spare accelerators such as Neuron a
recompile per batch shape — a CPU has none), and off Triton it folds each vocabulary tile with a dozen torch ops and
re-casts the weight tile to the compute dtype and back to float32 for every product. With completion-only loss
few positions carry a label (~7 of ~62 per item in the default study), and the chunked path took about a third of
a LoRA step on CPU (the profile: benchmarks/NOTES.md).

`completion_tokens_only` therefore, on CPU and for the duration of a training call only, (1) makes TRL keep only
the labelled positions, and (2) gives it `plain_logprob` in place of the chunked kernel: the same five outputs from
one `linear` (bf16 under autocast, as TRL's tiles are) and a float32 log-softmax, differentiated by autograd — the
[labelled tokens x vocab] logits are small on CPU (~116 x 49152 floats per step here). TRL is untouched elsewhere.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch.nn import functional as F


def plain_logprob(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor,
                  temperature: float, chunk_size: int, final_logit_softcapping: float | None = None,
                  logit_scale: float = 1.0, outputs: tuple[str, ...] = ()):
    """What `trl.kernels.ChunkedLogProbFunction.apply` returns — (log p(target), entropy, log Σp², mean logit,
    target is the argmax), the optional ones None unless named in `outputs` — for hidden [N, H] and weight [V, H].
    `chunk_size` is accepted for the same signature and unused: there are no tiles."""
    z = F.linear(hidden, weight, bias).float()
    if logit_scale != 1.0:  # each skipped op is a pass over [N, V] floats, forward and backward
        z = z * logit_scale
    if final_logit_softcapping is not None:
        z = final_logit_softcapping * torch.tanh(z / final_logit_softcapping)
    if temperature != 1.0:
        z = z / temperature
    logp = z.log_softmax(-1)
    log_probs = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(-1) if "entropy" in outputs else None
    with torch.no_grad():  # the metrics TRL marks non-differentiable
        log_sum_sq = torch.logsumexp(2 * logp, -1) if "log_sum_sq_probs" in outputs else None
        mean_logits = z.mean(-1) if "mean_logits" in outputs else None
        is_top1 = z.argmax(-1) == targets if "is_top1" in outputs else None  # ties: the first maximum, as TRL
    return log_probs, entropy, log_sum_sq, mean_logits, is_top1


class _Plain:
    apply = staticmethod(plain_logprob)


@contextmanager
def completion_tokens_only(device: str):
    """On CPU: TRL's fused LM head scores only the labelled positions, through plain_logprob (see module doc)."""
    import trl.trainer.utils as trl_utils

    saved = trl_utils._use_triton, trl_utils._ChunkedLogProbFunction
    if device == "cpu":
        trl_utils._use_triton = lambda d: True if d.type == "cpu" else saved[0](d)
        trl_utils._ChunkedLogProbFunction = _Plain
    try:
        yield
    finally:
        trl_utils._use_triton, trl_utils._ChunkedLogProbFunction = saved
