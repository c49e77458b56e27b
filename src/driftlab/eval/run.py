"""Evaluate a model on suites: per-sample JSONL plus per-suite metrics.

Recipe: open the model under test's backend (behind the results store), and for each suite × strategy either
generate-extract-score or pick the highest-likelihood choice; write one record per item and a metrics summary with
the suite's chance level.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from driftlab.config import EvalConfig, StrategyConfig, SuiteConfig
from driftlab.eval.backend import Backend
from driftlab.eval.extract import extract_for, split_thinking
from driftlab.eval.open import open_backend
from driftlab.eval.scoring import normalize_text, score
from driftlab.eval.strategies import STRATEGIES, run_strategy, zero_shot_config
from driftlab.eval.taxonomy import error_tags, tag_rates
from driftlab.models import ModelUnderTest
from driftlab.runs import write_json, write_jsonl
from driftlab.schema import ResultKey


def evaluate_model(model: ModelUnderTest, suites: dict[str, list[dict]], suite_cfgs: dict[str, SuiteConfig],
                   eval_cfg: EvalConfig, out_dir: Path, label: str = "model",
                   shots: dict[str, list[dict]] | None = None) -> dict:
    """Evaluate one model on every suite × strategy; writes `<key>.jsonl` and `eval.json` into out_dir, where
    key is a ResultKey: the suite name (zero_shot, and every log-likelihood suite) or `<suite>@<strategy>`."""
    shots = shots or {}
    plan, skipped = [], []
    for name in suites:
        for strategy in eval_cfg.strategies if suite_cfgs[name].mode == "generate" else [zero_shot_config()]:
            if strategy.suites is not None and name not in strategy.suites:
                continue
            needed, have = STRATEGIES.get(strategy.name).exemplars_needed(strategy), len(shots.get(name, []))
            if have < needed:
                # e.g. a held-out file whose every row is an eval item: no exemplar can be drawn without leaking
                skipped.append({"suite": name, "strategy": strategy.name,
                                "why": f"{have} exemplars available, {needed} needed"})
                continue
            plan.append((name, strategy, suites[name][: strategy.limit]))
    total = sum(len(items) * STRATEGIES.get(s.name).rows_per_item(s) for _, s, items in plan)
    for s in skipped:
        print(f"skipping {s['strategy']} on {s['suite']}: {s['why']}")
    with _progress() as progress:
        task = progress.add_task(f"eval {label}", total=total)
        # the store's per-request counts are summed into one line per model below, not printed per request
        with open_backend(model, eval_cfg, on_progress=lambda n: progress.advance(task, n)) as backend:
            metrics = {}
            for name, strategy, items in plan:
                key = str(ResultKey(name, strategy.name))
                records, metrics[key] = evaluate_suite(backend, items, suite_cfgs[name], eval_cfg, strategy,
                                                       shots.get(name, []))
                write_jsonl(out_dir / f"{key}.jsonl", records)
        if backend.store is not None:
            progress.console.print(f"eval {label}: {backend.hits:,} results from the results store, "
                                   f"{backend.misses:,} computed")
    summary = {"model": model.base.name, "fingerprint": backend.fingerprint,
               "artifact": str(model.artifact) if model.artifact else None,
               **({"scale": model.scale} if model.scale != 1.0 else {}),
               "cache": {"hits": backend.hits, "computed": backend.misses} if backend.store is not None else None,
               "skipped": skipped,
               "suites": metrics}
    write_json(out_dir / "eval.json", summary)
    return summary


def evaluate_suite(backend: Backend, items: list[dict], suite: SuiteConfig, eval_cfg: EvalConfig,
                   strategy: StrategyConfig | None = None, shots: list[dict] | None = None):
    """(per-sample records, metrics) for one suite under one prompting strategy."""
    strategy = strategy or zero_shot_config()
    prompts = [it["prompt"] for it in items]
    records = []
    if suite.mode == "loglik":
        t0 = time.perf_counter()
        shared = {it.get("shared_prefix", "") for it in items}  # one per suite (data.build.shared_prefix)
        all_scores = backend.loglik(prompts, [it["choices"] for it in items], shared.pop() if len(shared) == 1 else "")
        per_item = (time.perf_counter() - t0) / max(1, len(items))  # amortised, like a generation batch's
        for it, scores in zip(items, all_scores):
            pred = it["choices"][max(range(len(scores)), key=scores.__getitem__)]
            correct = pred == it["answer"]
            records.append(_record(it, raw=pred, extracted=pred, correct=correct, format_ok=True,
                                   reason="highest log-likelihood choice " + ("is" if correct else "is not") + " gold",
                                   method="loglik",
                                   extra={"choices": it["choices"], "loglik": scores, "latency_s": per_item}))
    else:
        outputs = run_strategy(strategy, backend, items, suite, eval_cfg.max_new_tokens, shots or [])
        rg_score = _reasoning_gym_scorer(suite) if suite.scorer == "reasoning_gym" else None

        def judge(text: str, item: dict, finish: str | None):
            ex = extract_for(text, suite)
            if suite.extraction == "strict" and finish == "length":  # the reply never ended: not an answer
                return ex, False, "cut by the token budget (strict extraction: never correct)"
            if rg_score is not None:
                return (ex, *rg_score(ex.answer, item))
            return (ex, *score(ex.answer, item["answer"], suite.scorer, item.get("choices")))

        for it, out in zip(items, outputs):
            gen = out.generation
            ex, correct, reason = judge(gen.text, it, gen.finish)
            thinking, _, thinking_truncated = split_thinking(gen.text)
            extra = {"strategy": strategy.name, "n_tokens": gen.n_tokens, "finish": gen.finish,
                     "latency_s": gen.latency_s, "thinking_chars": len(thinking),
                     "thinking_truncated": thinking_truncated, "cached": gen.cached, **out.extra}
            if it.get("choices"):
                extra["choices"] = it["choices"]
            expects_format = (suite.scorer == "strict" or "answer:" in it["prompt"].lower()
                              or STRATEGIES.get(strategy.name).asks_for_format)
            extra["errors"] = error_tags(gen.text, it["prompt"], ex.answer, gen.finish, ex.format_ok,
                                         thinking_truncated, expects_format, correct=bool(correct))
            if out.initial_text is not None:  # reflection: what the first answer was, and whether it held
                first, first_correct, _ = judge(out.initial_text, it, out.initial_finish)
                extra.update({"initial_output": out.initial_text, "initial_extracted": first.answer,
                              "initial_correct": bool(first_correct)})
            records.append(_record(it, raw=gen.text, extracted=ex.answer, correct=correct, format_ok=ex.format_ok,
                                   reason=reason, method=ex.method, extra=extra))
    return records, suite_metrics(records, suite, strategy.name)


def suite_metrics(records: list[dict], suite: SuiteConfig, strategy: str = "zero_shot") -> dict:
    """Accuracy, format, chance level, timing, error taxonomy — and the metrics the strategy itself declares,
    computed by its registry entry from the records."""
    n = len(records)
    correct = sum(r["correct"] for r in records)
    metrics = {
        "n": n,
        "correct": correct,
        "accuracy": correct / n if n else 0.0,
        "format_rate": sum(r["format_ok"] for r in records) / n if n else 0.0,
        "chance": chance_level(records, suite),
        "mode": suite.mode,
    }
    # Timings measured in this run only: a result from the store carries an old run's latency.
    latencies = sorted(r["latency_s"] for r in records if "latency_s" in r and not r.get("cached"))
    if latencies:
        metrics["latency_p50_s"] = statistics.median(latencies)
        metrics["latency_p95_s"] = latencies[min(len(latencies) - 1, math.ceil(0.95 * len(latencies)) - 1)]
    if suite.mode == "generate" and records:
        tokens = sum(r["n_tokens"] for r in records)
        fresh_tokens = sum(r["n_tokens"] for r in records if not r.get("cached"))
        metrics.update({
            "mean_output_tokens": tokens / n,
            "tokens_per_s": fresh_tokens / sum(latencies) if latencies and sum(latencies) else None,
            "truncated_rate": sum(r["finish"] == "length" for r in records) / n,
            "thinking_truncated_rate": sum(r["thinking_truncated"] for r in records) / n,
            "mean_thinking_chars": sum(r["thinking_chars"] for r in records) / n,
        })
    if records and "errors" in records[0]:
        metrics["errors"] = tag_rates(records)
    summarize = STRATEGIES.get(strategy).summarize
    if records and summarize is not None:
        metrics.update(summarize(records, suite))
    return metrics


def chance_level(records: list[dict], suite: SuiteConfig) -> float:
    """What a model with no skill scores: the better of guessing uniformly among the choices (multiple choice;
    0 for free generation) and always giving the suite's most common gold answer — so a suite whose answers are
    mostly '1' has a high floor, and so does a yes/no suite that is 70% 'Yes'."""
    if not records:
        return 0.0
    uniform = sum(1 / len(r["choices"]) for r in records) / len(records) if suite.mode == "loglik" else 0.0
    counts = Counter(normalize_text(r["gold"]) for r in records)
    return max(uniform, counts.most_common(1)[0][1] / len(records))


def _reasoning_gym_scorer(suite: SuiteConfig):
    """The generator's own `score_answer` (partial credit below 1.0 counts as wrong here)."""
    import reasoning_gym

    dataset = reasoning_gym.create_dataset(suite.task, size=1, seed=0, **suite.task_kwargs)

    def score_item(extracted: str | None, item: dict) -> tuple[bool, str]:
        if extracted is None:
            return False, "no answer extracted"
        entry = {"question": item["question"], "answer": item["answer"], "metadata": item["meta"]}
        value = float(dataset.score_answer(extracted, entry))
        return value >= 1.0, f"reasoning-gym score_answer = {value:g}"

    return score_item


def _record(item: dict, raw: str, extracted, correct: bool, format_ok: bool, reason: str, method: str,
            extra: dict) -> dict:
    return {"id": item["id"], "suite": item["suite"], "prompt": item["prompt"], "output": raw,
            "extracted": extracted, "gold": item["answer"], "correct": bool(correct), "format_ok": format_ok,
            "method": method, "reason": reason, **extra}


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn())
