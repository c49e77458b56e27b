"""Eager attention that reads a grouped-query KV cache as it is (CPU inference).

transformers' eager and SDPA paths expand every key/value head to the query heads that share it (`repeat_kv`)
before the products: while decoding, that copies the whole KV cache `groups` times at every step of every layer —
on the embedded SmolLM2 (9 query heads on 3 KV heads) about a fifth of a chain-of-thought generation went to those
copies (benchmarks/NOTES.md). Here the query heads that share a KV head are stacked into one matrix instead, so the
cache is multiplied where it lies. Otherwise it is transformers' `eager_attention_forward`: scores scaled, the
additive mask added, a float32 softmax, the product with the values. It is registered through transformers' own
extension point (AttentionInterface, with eager's additive mask), not patched in.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

NAME = "driftlab_gqa_eager"


def gqa_eager_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """query [b, heads, q, d]; key and value [b, kv_heads, n, d]; attention_mask additive, [b or 1, 1, q, >= n]."""
    b, heads, q, d = query.shape
    kv_heads, n = key.shape[1], key.shape[2]
    groups = heads // kv_heads  # query heads h * groups ... h * groups + groups - 1 read KV head h
    scores = torch.matmul(query.reshape(b, kv_heads, groups * q, d), key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        mask = attention_mask[:, :, None, :, :n]  # one mask for every query head of a group
        scores = (scores.view(b, kv_heads, groups, q, n) + mask).view(b, kv_heads, groups * q, n)
    probs = F.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    probs = F.dropout(probs, p=dropout, training=module.training)
    out = torch.matmul(probs, value).view(b, heads, q, d).transpose(1, 2).contiguous()
    return out, probs.view(b, heads, q, n)


# Architectures whose eager attention is exactly the above (no logit softcapping, attention sinks or per-layer
# scaling tricks): others keep transformers' own eager function, which knows their extras.
PLAIN_ATTENTION = {"llama", "mistral", "qwen2", "qwen3"}


def use_gqa_eager(model) -> None:
    """Switch a loaded transformers model to this attention (registered once per process), or to transformers' eager
    attention where its architecture is not one of PLAIN_ATTENTION."""
    if model.config.model_type not in PLAIN_ATTENTION:
        model.set_attn_implementation("eager")
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(NAME, gqa_eager_attention)
    AttentionMaskInterface.register(NAME, eager_mask)
    model.set_attn_implementation(NAME)
