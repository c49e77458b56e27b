"""driftlab's CPU LM head (train/lm_head.py) against TRL's chunked kernel, and the attention kernel choice."""

import pytest
import torch

from driftlab.config import ModelConfig, TrainConfig
from driftlab.models import ResolvedModel
from driftlab.train.lm_head import completion_tokens_only, plain_logprob
from driftlab.train.sft import EAGER_MAX_TOKENS, _machine_choices

OUTPUTS = ("entropy", "log_sum_sq_probs", "mean_logits", "is_top1")


@pytest.mark.parametrize("scale,temperature,softcap", [(1.0, 1.0, None), (0.5, 0.7, 30.0)])
def test_plain_logprob_matches_trl_chunked_kernel_and_its_gradients(scale, temperature, softcap):
    from trl.kernels import ChunkedLogProbFunction

    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(37, 16, generator=gen, dtype=torch.float32)
    weight = torch.randn(300, 16, generator=gen, dtype=torch.float32)
    targets = torch.randint(0, 300, (37,), generator=gen)
    results = []
    for fn in (plain_logprob, ChunkedLogProbFunction.apply):
        h, w = hidden.clone().requires_grad_(True), weight.clone().requires_grad_(True)
        out = fn(h, w, None, targets, temperature, 128, softcap, scale, OUTPUTS)  # 128: several vocab tiles in TRL
        (out[0].sum() + 0.3 * out[1].sum()).backward()
        results.append((out, h.grad, w.grad))
    (mine, gh, gw), (trl, th, tw) = results
    for a, b in zip(mine[:4], trl[:4]):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5), (a - b).abs().max()
    assert torch.equal(mine[4], trl[4])
    assert torch.allclose(gh, th, rtol=1e-5, atol=1e-5) and torch.allclose(gw, tw, rtol=1e-5, atol=1e-5)


def test_trl_is_patched_only_inside_the_context_and_only_on_cpu():
    import trl.trainer.utils as trl_utils

    before = trl_utils._use_triton, trl_utils._ChunkedLogProbFunction
    with completion_tokens_only("cuda"):
        assert (trl_utils._use_triton, trl_utils._ChunkedLogProbFunction) == before
    with completion_tokens_only("cpu"):
        assert trl_utils._use_triton(torch.device("cpu")) is True
        assert trl_utils._ChunkedLogProbFunction.apply is plain_logprob
    assert (trl_utils._use_triton, trl_utils._ChunkedLogProbFunction) == before


def test_attention_kernel_follows_sequence_length_and_config(tiny_model_dir):
    model, mcfg = ResolvedModel("tiny", str(tiny_model_dir), "x"), ModelConfig()
    short = [{"prompt": "What is 1 + 2?", "completion": "Answer: 3"}]
    long = [{"prompt": "one two three four " * EAGER_MAX_TOKENS, "completion": "Answer: 3"}]
    auto_bf16 = TrainConfig(bf16=True)
    assert _machine_choices(auto_bf16, "cpu", model, mcfg, short)["attention"] == "eager"
    assert _machine_choices(auto_bf16, "cpu", model, mcfg, long)["attention"] is None  # SDPA is faster there
    assert _machine_choices(TrainConfig(bf16=False), "cpu", model, mcfg, short)["attention"] is None  # fp32: no gain
    assert _machine_choices(TrainConfig(bf16=True, attention="sdpa"), "cpu", model, mcfg, short)["attention"] == "sdpa"
