"""Evaluate a model on suites: per-sample JSONL plus per-suite metrics.

Recipe: load the model (plus adapter), wrap it in a backend, and for each suite either generate-extract-score or
pick the highest-likelihood choice; write one record per item and a metrics summary with the suite's chance level.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from driftlab.config import EvalConfig, ModelConfig, StrategyConfig, SuiteConfig
from driftlab.errors import ConfigError
from driftlab.eval.backend import Backend, HFBackend, render_chat
from driftlab.eval.extract import extract_answer, split_thinking
from driftlab.eval.scoring import normalize_text, score
from driftlab.eval.store import CachedBackend, results_store
from driftlab.eval.strategies import canonical_answers, run_strategy
from driftlab.eval.taxonomy import error_tags, tag_rates
from driftlab.models import ResolvedModel, fingerprint_dir, inference_dtype, load_model, load_tokenizer, pick_device
from driftlab.runs import write_json, write_jsonl


def evaluate_model(model: ResolvedModel, model_cfg: ModelConfig, suites: dict[str, list[dict]],
                   suite_cfgs: dict[str, SuiteConfig], eval_cfg: EvalConfig, out_dir: Path,
                   adapter: Path | None = None, label: str = "model",
                   shots: dict[str, list[dict]] | None = None, scale: float = 1.0) -> dict:
    """Evaluate one model on every suite x strategy; writes `<key>.jsonl` and `eval.json` into out_dir, where
    key is the suite name (zero_shot, and every log-likelihood suite) or `<suite>@<strategy>`. `scale`: the
    fine-tune in `adapter` at scale α between the base and itself (models.load_model)."""
    shots = shots or {}
    plan, skipped = [], []
    for name in suites:
        for strategy in (eval_cfg.strategies if suite_cfgs[name].mode == "generate"
                         else [StrategyConfig(name="zero_shot")]):
            if strategy.suites is not None and name not in strategy.suites:
                continue
            if strategy.name == "few_shot" and len(shots.get(name, [])) < strategy.k:
                # e.g. a held-out file whose every row is an eval item: no exemplar can be drawn without leaking
                skipped.append({"suite": name, "strategy": "few_shot",
                                "why": f"{len(shots.get(name, []))} exemplars available, k={strategy.k}"})
                continue
            plan.append((name, strategy, suites[name][: strategy.limit]))
    total = sum(len(items) * _rows_per_item(s) for _, s, items in plan)
    for s in skipped:
        print(f"skipping {s['strategy']} on {s['suite']}: {s['why']}")
    with _progress() as progress, results_store(eval_cfg) as store:
        task = progress.add_task(f"eval {label}", total=total)
        backend, model_fp = open_backend(model, model_cfg, eval_cfg, adapter,
                                         on_progress=lambda n: progress.advance(task, n), scale=scale)
        if store is not None:
            backend = CachedBackend(backend, store, model_fp, eval_cfg.batch_size, log=progress.console.print)
        metrics = {}
        for name, strategy, items in plan:
            key = result_name(name, strategy.name)
            records, metrics[key] = evaluate_suite(backend, items, suite_cfgs[name], eval_cfg, strategy,
                                                   shots.get(name, []))
            write_jsonl(out_dir / f"{key}.jsonl", records)
    summary = {"model": model.name, "fingerprint": model_fp, "adapter": str(adapter) if adapter else None,
               **({"scale": scale} if scale != 1.0 else {}),
               "cache": {"hits": backend.hits, "computed": backend.misses} if store is not None else None,
               "skipped": skipped,
               "suites": metrics}
    write_json(out_dir / "eval.json", summary)
    return summary


def open_backend(model: ResolvedModel, model_cfg: ModelConfig, eval_cfg: EvalConfig, adapter: Path | None,
                 on_progress=None, scale: float = 1.0) -> tuple[Backend, str]:
    """(backend, model fingerprint for the results store)."""
    fp = model_fingerprint(model, model_cfg, eval_cfg, adapter, scale)
    if eval_cfg.backend == "vllm" and scale != 1.0:
        raise ConfigError("eval.backend=vllm cannot evaluate a fine-tune at a scale other than 1 (the sweep); "
                          "use the hf backend for it")
    if eval_cfg.backend == "vllm":
        from driftlab.eval.vllm_backend import VLLMBackend

        return VLLMBackend(model.path, model_cfg.dtype, adapter, model_cfg.system_prompt, model_cfg.enable_thinking,
                           on_progress=on_progress), fp
    def load() -> HFBackend:
        lm, tok = load_model(model, model_cfg.dtype, model_cfg.device, adapter, scale)
        return HFBackend(lm, tok, eval_cfg.batch_size, model_cfg.system_prompt, model_cfg.enable_thinking,
                         on_progress=on_progress)

    return LazyBackend(load, lambda: load_tokenizer(model, adapter), model_cfg.system_prompt,
                       model_cfg.enable_thinking, on_progress), fp


class LazyBackend:
    """The HF backend, loaded on first use: rendering chat text (what the results store keys on) needs only the
    tokenizer, so an eval or probe answered entirely from the store never loads weights, merges an adapter or
    decomposes an SVF expert — a warm study re-run costs seconds per model."""

    def __init__(self, load, load_tokenizer, system_prompt: str | None, enable_thinking: bool | None,
                 on_progress=None):
        self._load, self._load_tokenizer, self._backend, self._tok = load, load_tokenizer, None, None
        self.system_prompt, self.enable_thinking = system_prompt, enable_thinking
        self.on_progress = on_progress or (lambda n: None)  # the results store advances the bar for cached rows

    @property
    def loaded(self) -> HFBackend:
        if self._backend is None:
            self._backend = self._load()
        return self._backend

    def chat(self, prompt) -> str:
        if self._backend is not None:
            return self._backend.chat(prompt)
        if self._tok is None:
            self._tok = self._load_tokenizer()
        return render_chat(self._tok, prompt, self.system_prompt, self.enable_thinking)

    def __getattr__(self, name: str):  # generate, sample, complete, loglik, model, tok: load, then delegate
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.loaded, name)


def model_fingerprint(model: ResolvedModel, model_cfg: ModelConfig, eval_cfg: EvalConfig,
                      adapter: Path | None, scale: float = 1.0) -> str:
    """Base weights + adapter weights (a retrained adapter never reuses a stale result), the adapter's scale,
    and what changes the numbers: backend, dtype, device."""
    fp = model.fingerprint + (":" + fingerprint_dir(adapter) if adapter else "") + (f"@{scale!r}" if scale != 1 else "")
    if eval_cfg.backend == "vllm":
        return fp + f"|vllm|{model_cfg.dtype}"
    device = pick_device(model_cfg.device)
    return fp + f"|{inference_dtype(model_cfg.dtype, device)}|{device}"


def _rows_per_item(strategy: StrategyConfig) -> int:
    """Generated sequences per item (what the progress bar counts)."""
    return {"self_consistency": strategy.n, "reflection": 2}.get(strategy.name, 1)


def result_name(suite: str, strategy: str) -> str:
    return suite if strategy == "zero_shot" else f"{suite}@{strategy}"


def evaluate_suite(backend: Backend, items: list[dict], suite: SuiteConfig, eval_cfg: EvalConfig,
                   strategy: StrategyConfig | None = None, shots: list[dict] | None = None):
    """(per-sample records, metrics) for one suite under one prompting strategy."""
    strategy = strategy or StrategyConfig(name="zero_shot")
    prompts = [it["prompt"] for it in items]
    records = []
    if suite.mode == "loglik":
        t0 = time.perf_counter()
        all_scores = backend.loglik(prompts, [it["choices"] for it in items])
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

        def judge(text: str, item: dict):
            ex = extract_answer(text, suite.scorer)
            if rg_score is not None:
                return (ex, *rg_score(ex.answer, item))
            return (ex, *score(ex.answer, item["answer"], suite.scorer, item.get("choices")))

        for it, out in zip(items, outputs):
            gen = out.generation
            ex, correct, reason = judge(gen.text, it)
            thinking, _, thinking_truncated = split_thinking(gen.text)
            extra = {"strategy": strategy.name, "n_tokens": gen.n_tokens, "finish": gen.finish,
                     "latency_s": gen.latency_s, "thinking_chars": len(thinking),
                     "thinking_truncated": thinking_truncated, "cached": gen.cached, **out.extra}
            if it.get("choices"):
                extra["choices"] = it["choices"]
            expects_format = (suite.scorer == "strict" or "answer:" in it["prompt"].lower()
                              or strategy.name in ("cot", "reflection"))
            extra["errors"] = error_tags(gen.text, it["prompt"], ex.answer, gen.finish, ex.format_ok,
                                         thinking_truncated, expects_format)
            if out.initial_text is not None:  # reflection: what the first answer was, and whether it held
                first, first_correct, _ = judge(out.initial_text, it)
                extra.update({"initial_output": out.initial_text, "initial_extracted": first.answer,
                              "initial_correct": bool(first_correct)})
            records.append(_record(it, raw=gen.text, extracted=ex.answer, correct=correct, format_ok=ex.format_ok,
                                   reason=reason, method=ex.method, extra=extra))
    return records, suite_metrics(records, suite)


def suite_metrics(records: list[dict], suite: SuiteConfig) -> dict:
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
    if records and "consistency" in records[0]:
        metrics["consistency"] = sum(r["consistency"] for r in records) / n
    if records and "initial_correct" in records[0]:
        metrics.update({
            "initial_accuracy": sum(r["initial_correct"] for r in records) / n,
            "changed_rate": sum(a != b for a, b in (canonical_answers([r["initial_extracted"], r["extracted"]],
                                                                                suite.scorer, r.get("choices"))
                                                             for r in records)) / n,
            "right_to_wrong": sum(r["initial_correct"] and not r["correct"] for r in records),
            "wrong_to_right": sum(not r["initial_correct"] and r["correct"] for r in records),
        })
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
