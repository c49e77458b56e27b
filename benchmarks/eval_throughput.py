"""Evaluation throughput: driftlab's HF backend against lm-evaluation-harness' `hf` model on identical items.

The items are the default study's zero-shot generate suites (target + reworded held-out), each prompt rendered by
the model's chat template on both sides (lm-eval: `apply_chat_template`), greedy, the same max new tokens, stopping
at end-of-turn. driftlab runs at its default dtype ('auto': bfloat16 on a bf16-capable CPU) and at float32;
lm-eval at its defaults (batch 1, dtype auto = the checkpoint's float32) and at driftlab's batch size in each dtype.
Model loading is outside every timer; driftlab's results store is off (a warm store would answer from SQLite, not
measure decoding). Reported: items/s, generated tokens/s, and the share of items whose reply text is identical to
driftlab's in the same dtype (bf16 rounding depends on the batch shape, so only float32 can match exactly).

    python benchmarks/eval_throughput.py
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine, peak_rss_mb, run_child, save  # noqa: E402

SUITES = ["arithmetic", "arithmetic_reworded"]


def _items(config: Path):
    from driftlab.config import load_config
    from driftlab.data import build_data

    cfg = load_config(config, [])
    bundle = build_data(cfg.data, cfg.seed)
    return cfg, {n: bundle.suites[n] for n in SUITES}


def measure_driftlab(config: Path, dtype: str, decoding: str = "auto") -> dict:
    from driftlab.eval.open import open_backend
    from driftlab.eval.run import evaluate_suite
    from driftlab.models import ModelUnderTest, inference_dtype, resolve_model

    cfg, suites = _items(config)
    eval_cfg = cfg.eval.model_copy(update={"cache": False, "decoding": decoding})
    model_cfg = cfg.model.model_copy(update={"dtype": dtype})
    with open_backend(ModelUnderTest(resolve_model(cfg.model.name_or_path), model_cfg), eval_cfg) as backend:
        backend.loaded  # the backend opens lazily: load the model here, outside the timer, as lm-eval's is
        suite_cfgs = cfg.data.suite_configs()
        t0 = time.perf_counter()
        outputs, tokens = {}, 0
        for name, items in suites.items():
            records, _ = evaluate_suite(backend, items, suite_cfgs[name], eval_cfg)
            outputs[name] = [r["output"] for r in records]
            tokens += sum(r["n_tokens"] for r in records)
        wall = time.perf_counter() - t0
    return {"batch_size": eval_cfg.batch_size, "dtype": str(inference_dtype(dtype, "cpu")).replace("torch.", ""),
            "decoding": decoding,
            "items": sum(map(len, outputs.values())), "wall_s": round(wall, 2), "tokens": tokens, "outputs": outputs,
            "peak_rss_mb": round(peak_rss_mb())}


def measure_lm_eval(config: Path, batch_size: int, dtype: str) -> dict:
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from driftlab.eval.strategies import reply_budget
    from driftlab.models import resolve_model

    cfg, suites = _items(config)
    model = resolve_model(cfg.model.name_or_path)
    batch_size = batch_size or cfg.eval.batch_size
    # driftlab's zero-shot budget per suite: eval.max_new_tokens, or the suite's own where larger
    budgets = {n: reply_budget(None, cfg.eval.max_new_tokens, cfg.data.suite_configs()[n]) for n in suites}
    task_dir = Path(tempfile.mkdtemp(prefix="bench-lmeval-"))
    for name, items in suites.items():  # one lm-eval task per suite, reading the very same prompts
        (task_dir / f"{name}.jsonl").write_text("".join(json.dumps({"prompt": it["prompt"], "answer": it["answer"]})
                                                        + "\n" for it in items))
        (task_dir / f"{name}.yaml").write_text(json.dumps({
            "task": f"driftlab_{name}", "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": str(task_dir / f"{name}.jsonl")}}, "test_split": "test",
            "output_type": "generate_until", "doc_to_text": "{{prompt}}", "doc_to_target": "{{answer}}",
            "generation_kwargs": {"until": [], "do_sample": False, "max_gen_toks": budgets[name]},
            "metric_list": [{"metric": "exact_match"}]}))
    lm = HFLM(pretrained=model.path, device="cpu", dtype=dtype, batch_size=batch_size)
    manager = TaskManager(include_path=str(task_dir))  # indexing task YAMLs: setup, outside the timer
    t0 = time.perf_counter()
    results = lm_eval.simple_evaluate(model=lm, tasks=[f"driftlab_{n}" for n in suites], num_fewshot=0,
                                      apply_chat_template=True, log_samples=True, task_manager=manager)
    wall = time.perf_counter() - t0
    outputs, tokens = {}, 0
    for name in suites:
        samples = sorted(results["samples"][f"driftlab_{name}"], key=lambda s: s["doc_id"])
        outputs[name] = [s["resps"][0][0] for s in samples]
        tokens += sum(len(lm.tok_encode(o)) for o in outputs[name])
    return {"batch_size": batch_size, "dtype": str(lm.model.dtype).replace("torch.", ""),
            "items": sum(map(len, outputs.values())),
            "wall_s": round(wall, 2), "tokens": tokens, "outputs": outputs, "peak_rss_mb": round(peak_rss_mb())}


# name: (tool, batch size, dtype, the driftlab run it must agree with); batch None = driftlab's eval.batch_size
# (until 2026-11-30 the lm-eval runs were at batch 32 while driftlab's default had become 64). The *_static runs
# are driftlab's GPU decoding (eval.decoding=static: refilled slots on a static KV cache, uncompiled on the CPU).
RUNS = {"driftlab": ("driftlab", None, "auto", "driftlab"),
        "driftlab_fp32": ("driftlab", None, "float32", "driftlab_fp32"),
        "driftlab_static": ("driftlab", None, "auto", "driftlab"),
        "driftlab_static_fp32": ("driftlab", None, "float32", "driftlab_fp32"),
        "lm_eval_defaults": ("lm_eval", 1, "auto", "driftlab_fp32"),
        "lm_eval_same_batch_bf16": ("lm_eval", None, "bfloat16", "driftlab"),
        "lm_eval_same_batch_fp32": ("lm_eval", None, "float32", "driftlab_fp32")}


# items/s ratios, like against like: each tool at its defaults, then the same batch size and dtype on both sides
PAIRS = {"defaults": ("driftlab", "lm_eval_defaults"),
         "float32_same_batch": ("driftlab_fp32", "lm_eval_same_batch_fp32"),
         "bfloat16_same_batch": ("driftlab", "lm_eval_same_batch_bf16")}


def ratios(runs: dict) -> dict:
    return {k: {"driftlab": a, "lm_eval": b, "items_per_s_ratio": round(runs[a]["items_per_s"] / runs[b]["items_per_s"], 2),
                "identical_replies": runs[b]["identical_to_driftlab"] if runs[b]["compared_with"] == a else None}
            for k, (a, b) in PAIRS.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "default.yaml")
    p.add_argument("--one", choices=RUNS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        tool, batch, dtype, _ = RUNS[args.one]
        decoding = "static" if args.one.startswith("driftlab_static") else "dynamic"
        r = (measure_driftlab(args.config, dtype, decoding) if tool == "driftlab"
             else measure_lm_eval(args.config, batch, dtype))
        print("\n" + json.dumps({"run": args.one, **r}))
        return
    runs = {}
    for name in RUNS:
        print(f"eval_throughput: {name} ...", file=sys.stderr, flush=True)
        runs[name] = run_child(Path(__file__), ["--one", name, "--config", str(args.config)])
    for name, r in runs.items():
        ref = runs[RUNS[name][3]]["outputs"]
        r["items_per_s"] = round(r["items"] / r["wall_s"], 2)
        r["tokens_per_s"] = round(r["tokens"] / r["wall_s"], 1)
        pairs = [(a.strip(), b.strip()) for n in SUITES for a, b in zip(ref[n], r["outputs"][n])]
        r["compared_with"] = RUNS[name][3]
        r["identical_to_driftlab"] = round(sum(a == b for a, b in pairs) / len(pairs), 4)
        r["examples_differing"] = [{"driftlab": a, name: b} for a, b in pairs if a != b][:3]
    for r in runs.values():
        del r["outputs"]
    result = {"benchmark": "eval_throughput", "machine": machine(), "command": "python benchmarks/eval_throughput.py",
              "suites": SUITES, "runs": runs, "ratios": ratios(runs)}
    print(json.dumps(result["ratios"]), file=sys.stderr)
    save("eval_throughput", result)


if __name__ == "__main__":
    main()
