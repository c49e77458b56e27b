"""What one forward/backward pass costs when it holds almost no tokens: the fixed cost that splitting a batch into
micro-batches repeats (train/memory.py splits a GPU batch into passes of ~2,000 tokens of a 4B model on the
assumption that this cost is small beside the pass's matrix work).

The model has Qwen3-4B's depth (36 decoder layers, so as many modules and kernel launches a pass) at tiny widths,
so that the time is the host's (Python, the dispatcher, on a GPU the kernel launches), not arithmetic: the frozen
bf16 base alone (inputs requiring grad, so backward runs through it) and under driftlab's LoRA (r16 on every
linear layer, float32 adapters, bf16 autocast, PEFT's input casts off), each with and without checkpointing every
layer. On the CPU it also counts the aten ops a pass dispatches (a GPU launches about one kernel for each compute
op). `--real` takes Qwen3-4B's own widths (for a GPU: the pass's time at a few tokens is then its fixed cost there).

    python benchmarks/pass_overhead.py            # ~1 min on the 2-core CPU
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, save  # noqa: E402
from gpu_throughput import QWEN3_4B  # noqa: E402

TINY_WIDTHS = dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                   vocab_size=512)
# view and bookkeeping ops that launch no kernel (or none worth counting)
NO_KERNEL = {"aten::empty", "aten::empty_strided", "aten::empty_like", "aten::view", "aten::_reshape_alias",
             "aten::as_strided", "aten::t", "aten::transpose", "aten::reshape", "aten::detach", "aten::expand",
             "aten::unsqueeze", "aten::slice", "aten::select", "aten::permute", "aten::_unsafe_view", "aten::alias",
             "aten::squeeze", "aten::contiguous", "aten::result_type", "aten::lift_fresh", "aten::is_nonzero",
             "aten::item", "aten::_local_scalar_dense", "aten::split", "aten::unbind", "aten::chunk", "aten::narrow",
             "aten::resolve_conj", "aten::resolve_neg", "aten::to", "aten::_to_copy", "aten::split_with_sizes",
             "aten::view_as", "aten::expand_as", "aten::flatten", "aten::matmul", "aten::linear"}


def build(lora: bool, real: bool, device: str):
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    widths = {k: QWEN3_4B[k] for k in TINY_WIDTHS} if real else TINY_WIDTHS
    config = Qwen3Config(num_hidden_layers=QWEN3_4B["num_hidden_layers"], attn_implementation="sdpa", **widths)
    with torch.device(device):
        model = Qwen3ForCausalLM(config).to(torch.bfloat16)
    if not lora:
        model.requires_grad_(False)
        model.enable_input_require_grads()  # backward runs through the frozen layers, as under an adapter
        return model.train()
    from peft import LoraConfig, get_peft_model

    from driftlab.train.sft import _uncast_adapter_inputs

    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()  # driftlab's float32 adapters on a bf16 base
    _uncast_adapter_inputs(model)
    return model.train()


def time_pass(model, tokens: int, checkpointing: bool, device: str, iters: int) -> dict:
    import torch

    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_disable()
    ids = torch.randint(0, model.config.vocab_size, (1, tokens), device=device)

    def one():
        with torch.autocast(device, torch.bfloat16):
            loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(3):
        one()
    sync()
    t0 = time.perf_counter()
    for _ in range(iters):
        one()
    sync()
    ms = (time.perf_counter() - t0) / iters * 1000
    ops = None
    if device == "cpu":
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            one()
        ops = sum(e.count for e in prof.key_averages() if e.key.startswith("aten::") and e.key not in NO_KERNEL)
    return {"ms_per_pass": round(ms, 1), "aten_compute_ops": ops}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=16, help="tokens a pass (few: the fixed cost)")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--real", action="store_true", help="Qwen3-4B's own widths (for a GPU)")
    args = p.parse_args()
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = []
    for lora in (False, True):
        model = build(lora, args.real, device)
        for ckpt in (False, True):
            r = time_pass(model, args.tokens, ckpt, device, args.iters)
            rows.append({"model": "LoRA r16, all linear" if lora else "frozen base", "checkpointing": ckpt, **r})
            print(rows[-1], flush=True)
        del model
    save("pass_overhead" + ("_real" if args.real else ""), {
        "benchmark": "pass_overhead", "machine": machine(), "device": device,
        "command": " ".join(["python", "benchmarks/pass_overhead.py", *sys.argv[1:]]),
        "settings": {"layers": QWEN3_4B["num_hidden_layers"], "widths": "Qwen3-4B" if args.real else TINY_WIDTHS,
                     "tokens": args.tokens, "iters": args.iters}, "rows": rows})


if __name__ == "__main__":
    main()
