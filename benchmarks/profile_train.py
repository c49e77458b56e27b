"""Where a driftlab LoRA training step spends its time on this machine (torch.profiler over steps 3-6 of the default
config): the share in matrix multiplies and the FLOP/s they reach, against the square-GEMM ceiling — the profile
behind the utilisation figure of train_throughput.

    python benchmarks/profile_train.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, gemm_flops, machine, save  # noqa: E402

FIRST, LAST = 3, 6
GEMM = ("aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm", "aten::baddbmm")  # the kernels, not their wrappers


def _gemm_flops(op: str, shapes: list) -> int:
    """2·M·K·N (times the batch for bmm) from an op's recorded input shapes; 0 for shapes it cannot read."""
    mats = [sh for sh in shapes if isinstance(sh, list) and len(sh) in (2, 3)]
    if op in ("aten::addmm", "aten::addmm_", "aten::baddbmm"):
        mats = mats[1:]  # the added tensor comes first
    if len(mats) < 2:
        return 0
    a, b = mats[0], mats[1]
    batch = a[0] if len(a) == 3 else 1
    return 2 * batch * a[-2] * a[-1] * b[-1]


def main() -> None:
    from torch.profiler import ProfilerActivity, profile
    from trl import SFTTrainer

    from driftlab.config import load_config
    from driftlab.data import build_data
    from driftlab.models import ModelUnderTest, resolve_model
    from driftlab.train.sft import train_model

    state = {"step": 0, "prof": None, "t0": 0.0, "wall": 0.0}
    original = SFTTrainer.training_step

    def training_step(self, *args, **kwargs):  # forward + backward of one optimizer step (batch 16, no accumulation)
        state["step"] += 1
        if state["step"] == FIRST:
            # record_shapes, not with_flops: the FLOP counter's per-op overhead doubled the profiled wall time and
            # inflated the share of small ops; GEMM FLOPs are computed from the recorded shapes instead
            state["prof"] = profile(activities=[ProfilerActivity.CPU], record_shapes=True)
            state["prof"].__enter__()
            state["t0"] = time.perf_counter()
        out = original(self, *args, **kwargs)
        if state["step"] == LAST:
            state["wall"] = time.perf_counter() - state["t0"]
            state["prof"].__exit__(None, None, None)
        return out

    SFTTrainer.training_step = training_step
    cfg = load_config(ROOT / "configs" / "default.yaml", [])
    tcfg = cfg.train.model_copy(update={"max_steps": LAST + 1, "report_to": [], "cache": False, "save_steps": 10**6})
    start = ModelUnderTest(resolve_model(cfg.model.name_or_path), cfg.model)
    train_model(start, tcfg, build_data(cfg.data, cfg.seed).train,
                Path(tempfile.mkdtemp(prefix="bench-profile-")), cfg.seed)
    events = state["prof"].key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 1e6
    gemm = [e for e in events if e.key in GEMM]
    gemm_s = sum(e.self_cpu_time_total for e in gemm) / 1e6
    gemm_flop = sum(_gemm_flops(e.key, e.input_shapes) * e.count
                    for e in state["prof"].key_averages(group_by_input_shape=True) if e.key in GEMM)
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:15]
    ceiling = gemm_flops("bfloat16")
    result = {
        "benchmark": "profile_train", "machine": machine(), "command": "python benchmarks/profile_train.py",
        "steps_profiled": LAST - FIRST + 1, "wall_s": round(state["wall"], 2),
        "op_time_s": round(total, 2), "gemm_time_share": round(gemm_s / total, 3),
        "gemm_gflops_achieved": round(gemm_flop / gemm_s / 1e9, 1) if gemm_s else None,
        "gemm_gflops_ceiling_bf16": round(ceiling / 1e9, 1),
        "top_ops": [{"op": e.key, "self_s": round(e.self_cpu_time_total / 1e6, 3), "calls": e.count,
                     "share": round(e.self_cpu_time_total / 1e6 / total, 3)} for e in top],
    }
    print(json.dumps({k: v for k, v in result.items() if k != "top_ops"}), file=sys.stderr)
    save("profile_train", result)


if __name__ == "__main__":
    main()
