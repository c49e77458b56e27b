"""Training throughput: `driftlab train` against TRL's SFTTrainer on the same model, data, LoRA and optimizer steps.

Four runs, each in its own process: driftlab (its CPU/GPU defaults), TRL with its own defaults (bf16 and gradient
checkpointing on), TRL at its best settings for this machine (bf16 only where the hardware has it, no gradient
checkpointing), and TRL in float32 — the exact computation, the reference both bf16 runs' losses are held against
(bf16 rounding alone moves a 12-step loss curve by a few percent; a speed-up counts only if driftlab stays as close
to float32 as TRL does). All four get driftlab's default-study training set, LoRA r16/alpha32 on all linear layers,
batch 16, the same learning-rate schedule, seed and step count. Reported: real (non-pad) tokens/s, peak RSS (or VRAM), final
loss, and utilisation = 4·N FLOPs per token (LoRA: forward 2N + backward through frozen weights 2N) × tokens/s ÷
the GEMM FLOP/s this benchmark measures for the dtype in use (driftlab skips the LM head on prompt tokens, so its
figure counts FLOPs it did not have to execute: read it as model-FLOPs utilisation, not hardware utilisation).

    python benchmarks/train_throughput.py [--steps 12]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, gemm_flops, machine, peak_rss_mb, run_child, save  # noqa: E402

RUNS = ["driftlab", "trl_defaults", "trl_best", "trl_fp32"]


def measure(name: str, steps: int, config: Path) -> dict:
    import torch

    from driftlab.config import load_config
    from driftlab.data import build_data
    from driftlab.models import ModelUnderTest, resolve_model
    from driftlab.train.sft import train_model
    from driftlab.train.mix import build_training_set
    from driftlab.models import has_bf16
    from driftlab.train.sft import to_conversation

    cfg = load_config(config, [])
    bundle = build_data(cfg.data, cfg.seed)
    model = ModelUnderTest(resolve_model(cfg.model.name_or_path), cfg.model)
    tcfg = cfg.train.model_copy(update={"max_steps": steps, "report_to": [], "cache": False, "save_steps": 10**6})
    out = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    if name == "driftlab":
        s = train_model(model, tcfg, bundle.train, out, cfg.seed)
        losses = [json.loads(line)["loss"] for line in (out / "train_log.jsonl").read_text().splitlines()
                  if "loss" in json.loads(line)]
        return _result(name, s["tokens"], s["wall_s"], losses, s["bf16"], s["gradient_checkpointing"],
                       s["total_params"])

    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer
    from datasets import Dataset

    train_set, _ = build_training_set(bundle.train, tcfg, model, cfg.seed, set(), cfg.eval)
    rows = [to_conversation(it, cfg.model.system_prompt, cfg.model.enable_thinking) for it in train_set]
    knobs = dict(output_dir=str(out), max_steps=steps, per_device_train_batch_size=tcfg.batch_size,
                 learning_rate=tcfg.learning_rate, lr_scheduler_type=tcfg.lr_scheduler, warmup_steps=tcfg.warmup_ratio,
                 weight_decay=tcfg.weight_decay, max_length=tcfg.max_length, logging_steps=1, save_strategy="no",
                 report_to=[], seed=cfg.seed, data_seed=cfg.seed, include_num_input_tokens_seen="non_padding",
                 use_cpu=not torch.cuda.is_available(), disable_tqdm=True)
    if name == "trl_best":  # what a careful user sets for this machine
        knobs.update(bf16=has_bf16("cuda" if torch.cuda.is_available() else "cpu"),
                     activation_checkpointing=False)  # memory is no constraint for this model
    if name == "trl_fp32":  # the reference for the losses, not for speed
        knobs.update(bf16=False, activation_checkpointing=False)
    args = SFTConfig(**knobs)
    opts = tcfg.method_options
    lora = LoraConfig(r=opts.lora_r, lora_alpha=opts.lora_alpha, lora_dropout=opts.lora_dropout,
                      target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model.base.path, args=args, train_dataset=Dataset.from_list(rows), peft_config=lora)
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    params = sum(p.numel() for n, p in trainer.model.named_parameters() if "lora_" not in n)  # the base model's N
    return _result(name, trainer.state.num_input_tokens_seen, wall, losses, bool(args.bf16),
                   bool(args.activation_checkpointing), params)


def _result(name, tokens, wall, losses, bf16, checkpointing, params) -> dict:
    import torch

    peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else peak_rss_mb()
    return {"run": name, "tokens": int(tokens), "wall_s": round(wall, 2), "tokens_per_s": round(tokens / wall, 1),
            "first_loss": losses[0], "final_loss": sum(losses[-3:]) / len(losses[-3:]), "losses": losses,
            "bf16": bf16, "gradient_checkpointing": checkpointing, "params": params,
            "peak_memory_mb": round(peak), "memory_kind": "VRAM" if torch.cuda.is_available() else "RSS"}


def _curve_distance(losses: list[float], reference: list[float]) -> float:
    return round(sum(abs(a - b) / b for a, b in zip(losses, reference)) / len(reference), 4)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "default.yaml")
    p.add_argument("--one", choices=RUNS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print("\n" + json.dumps(measure(args.one, args.steps, args.config)))  # after any progress-bar residue
        return
    runs = {}
    for name in RUNS:
        print(f"train_throughput: {name} ({args.steps} steps) ...", file=sys.stderr, flush=True)
        runs[name] = run_child(Path(__file__), ["--one", name, "--steps", str(args.steps), "--config", str(args.config)])
    flops = {"float32": gemm_flops("float32"), "bfloat16": gemm_flops("bfloat16")}
    for r in runs.values():
        r["utilisation"] = round(4 * r["params"] * r["tokens_per_s"] / flops["bfloat16" if r["bf16"] else "float32"], 3)
    d, best, defaults, exact = runs["driftlab"], runs["trl_best"], runs["trl_defaults"], runs["trl_fp32"]
    result = {
        "benchmark": "train_throughput", "machine": machine(), "steps": args.steps,
        "command": f"python benchmarks/train_throughput.py --steps {args.steps}",
        "gemm_flops": {k: round(v / 1e9, 1) for k, v in flops.items()},  # GFLOP/s
        "runs": runs,
        "ratios": {"tokens_per_s_vs_trl_best": round(d["tokens_per_s"] / best["tokens_per_s"], 2),
                   "tokens_per_s_vs_trl_defaults": round(d["tokens_per_s"] / defaults["tokens_per_s"], 2),
                   "memory_vs_trl_defaults": round(d["peak_memory_mb"] / defaults["peak_memory_mb"], 2),
                   "final_loss_rel_diff_vs_trl_best": round(abs(d["final_loss"] - best["final_loss"])
                                                            / best["final_loss"], 4),
                   # mean over steps of |loss - float32 loss| / float32 loss: distance from the exact computation
                   "loss_curve_dist_vs_fp32": {r["run"]: _curve_distance(r["losses"], exact["losses"])
                                               for r in (d, best, defaults)}},
    }
    print(json.dumps(result["ratios"]), file=sys.stderr)
    save("train_throughput", result)


if __name__ == "__main__":
    main()
