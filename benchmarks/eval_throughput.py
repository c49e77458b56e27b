"""Evaluation throughput: driftlab's HF backend against lm-evaluation-harness' `hf` model on identical items.

The items are the default study's zero-shot generate suites (target + reworded held-out), each prompt rendered by
the model's chat template on both sides (lm-eval: `apply_chat_template`), greedy, the same max new tokens, stopping
at end-of-turn. lm-eval runs twice: at its default batch size (1) and at driftlab's (32). Model loading is outside
every timer; driftlab's results store is off (a warm store would answer from SQLite, not measure decoding).
Reported: items/s, generated tokens/s, and the share of items whose reply text is identical to driftlab's.

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


def measure_driftlab(config: Path) -> dict:
    from driftlab.eval.run import evaluate_suite, open_backend
    from driftlab.models import resolve_model

    cfg, suites = _items(config)
    eval_cfg = cfg.eval.model_copy(update={"cache": False})
    backend, _ = open_backend(resolve_model(cfg.model.name_or_path), cfg.model, eval_cfg, None)
    suite_cfgs = cfg.data.suite_configs()
    t0 = time.perf_counter()
    outputs, tokens = {}, 0
    for name, items in suites.items():
        records, _ = evaluate_suite(backend, items, suite_cfgs[name], eval_cfg)
        outputs[name] = [r["output"] for r in records]
        tokens += sum(r["n_tokens"] for r in records)
    wall = time.perf_counter() - t0
    return {"run": "driftlab", "batch_size": eval_cfg.batch_size, "items": sum(map(len, outputs.values())),
            "wall_s": round(wall, 2), "tokens": tokens, "outputs": outputs, "peak_rss_mb": round(peak_rss_mb())}


def measure_lm_eval(config: Path, batch_size: int) -> dict:
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from driftlab.models import resolve_model

    cfg, suites = _items(config)
    model = resolve_model(cfg.model.name_or_path)
    task_dir = Path(tempfile.mkdtemp(prefix="bench-lmeval-"))
    for name, items in suites.items():  # one lm-eval task per suite, reading the very same prompts
        (task_dir / f"{name}.jsonl").write_text("".join(json.dumps({"prompt": it["prompt"], "answer": it["answer"]})
                                                        + "\n" for it in items))
        (task_dir / f"{name}.yaml").write_text(json.dumps({
            "task": f"driftlab_{name}", "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": str(task_dir / f"{name}.jsonl")}}, "test_split": "test",
            "output_type": "generate_until", "doc_to_text": "{{prompt}}", "doc_to_target": "{{answer}}",
            "generation_kwargs": {"until": [], "do_sample": False, "max_gen_toks": cfg.eval.max_new_tokens},
            "metric_list": [{"metric": "exact_match"}]}))
    lm = HFLM(pretrained=model.path, device="cpu", dtype="float32", batch_size=batch_size)
    t0 = time.perf_counter()
    results = lm_eval.simple_evaluate(model=lm, tasks=[f"driftlab_{n}" for n in suites], num_fewshot=0,
                                      apply_chat_template=True, log_samples=True,
                                      task_manager=TaskManager(include_path=str(task_dir)))
    wall = time.perf_counter() - t0
    outputs, tokens = {}, 0
    for name in suites:
        samples = sorted(results["samples"][f"driftlab_{name}"], key=lambda s: s["doc_id"])
        outputs[name] = [s["resps"][0][0] for s in samples]
        tokens += sum(len(lm.tok_encode(o)) for o in outputs[name])
    return {"run": f"lm_eval_bs{batch_size}", "batch_size": batch_size, "items": sum(map(len, outputs.values())),
            "wall_s": round(wall, 2), "tokens": tokens, "outputs": outputs, "peak_rss_mb": round(peak_rss_mb())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "default.yaml")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        r = measure_driftlab(args.config) if args.one == "driftlab" else measure_lm_eval(args.config, int(args.one))
        print("\n" + json.dumps(r))
        return
    runs = {}
    for one in ["driftlab", "1", "32"]:
        print(f"eval_throughput: {one} ...", file=sys.stderr, flush=True)
        r = run_child(Path(__file__), ["--one", one, "--config", str(args.config)])
        runs[r["run"]] = r
    ref = runs["driftlab"]["outputs"]
    for r in runs.values():
        r["items_per_s"] = round(r["items"] / r["wall_s"], 2)
        r["tokens_per_s"] = round(r["tokens"] / r["wall_s"], 1)
        pairs = [(a.strip(), b.strip()) for n in SUITES for a, b in zip(ref[n], r["outputs"][n])]
        r["identical_to_driftlab"] = round(sum(a == b for a, b in pairs) / len(pairs), 4)
        r["examples_differing"] = [{"driftlab": a, r["run"]: b} for a, b in pairs if a != b][:3]
        del r["outputs"]
    d = runs["driftlab"]
    result = {"benchmark": "eval_throughput", "machine": machine(), "command": "python benchmarks/eval_throughput.py",
              "suites": SUITES, "runs": runs,
              "ratios": {f"items_per_s_vs_{k}": round(d["items_per_s"] / r["items_per_s"], 2)
                         for k, r in runs.items() if k != "driftlab"}}
    print(json.dumps(result["ratios"]), file=sys.stderr)
    save("eval_throughput", result)


if __name__ == "__main__":
    main()
