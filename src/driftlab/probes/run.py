"""Stage 4 — probes on one model (base, or base + a fine-tune's artifact): per-item JSONL per probe + probes.json.

Recipe: open the same backend the eval uses (behind the results store, so CoT replies and samples the eval already
produced come back without recomputation), take the first `probes.limit` items of the probe suite, run each probe,
time it, write its rows. Drift also loads the base model beside the tuned one (KL needs both distributions).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console

from driftlab.config import EvalConfig, ModelConfig, ProbesConfig, StrategyConfig, SuiteConfig
from driftlab.data.sources import drift_prompts
from driftlab.eval.run import model_fingerprint, open_backend
from driftlab.eval.store import CachedBackend, result_key, results_store
from driftlab.models import ResolvedModel
from driftlab.probes import diversity, drift, faithfulness, shortcuts
from driftlab.runs import write_json, write_jsonl

console = Console()


def run_probes(model: ResolvedModel, model_cfg: ModelConfig, eval_cfg: EvalConfig, cfg: ProbesConfig,
               suite: SuiteConfig, items: list[dict], shots: list[dict], out_dir: Path,
               adapter: Path | None = None) -> dict:
    items = items[: cfg.limit]
    inner, model_fp = open_backend(model, model_cfg, eval_cfg, adapter)
    cot = next((s for s in eval_cfg.strategies if s.name == "cot"), StrategyConfig(name="cot", max_new_tokens=96))
    results, timings = {}, {}
    with results_store(eval_cfg) as store:
        backend = CachedBackend(inner, store, model_fp, eval_cfg.batch_size, log=lambda m: None) if store else inner
        for probe in cfg.run:
            console.print(f"probe {probe} ({len(items)} items)")
            t0 = time.perf_counter()
            if probe == "faithfulness":
                rows = faithfulness.faithfulness(backend, items, suite, cfg, cot)
                results[probe] = faithfulness.summary(rows, cfg)
            elif probe == "diversity":
                from driftlab.probes.embed import Embedder

                sc = next((s for s in eval_cfg.strategies if s.name == "self_consistency"), None)
                seed = sc.seed if sc else 0  # with n and temperature equal too, the store hands its samples back
                budget = (sc.max_new_tokens if sc and sc.max_new_tokens else eval_cfg.max_new_tokens)
                rows = diversity.diversity(backend, items, cfg.samples, cfg.temperature, seed, budget, Embedder())
                results[probe] = diversity.summary(rows)
            elif probe == "shortcuts":
                rows = shortcuts.shortcuts(backend, items, suite, shots, eval_cfg.max_new_tokens, cot,
                                           cfg.alt_template)
                results[probe] = shortcuts.summary(rows)
            else:
                rows, results[probe] = _drift(model, model_cfg, eval_cfg, cfg, inner, model_fp, store, adapter)
            timings[probe] = round(time.perf_counter() - t0, 2)
            write_jsonl(out_dir / f"{probe}.jsonl", rows)
    summary = {"model": model.name, "adapter": str(adapter) if adapter else None, "suite": suite.name,
               "items": len(items), "probes": results, "timings_s": timings}
    write_json(out_dir / "probes.json", summary)
    return summary


def _drift(model, model_cfg, eval_cfg, cfg, tuned_backend, tuned_fp, store, adapter) -> tuple[list[dict], dict]:
    """Base replies to general prompts (cached), then KL(base ‖ this model) on them. For the base model itself the
    KL is 0 by construction (one forward pass) and the row records its NLL on its own replies. The rows are kept in
    the results store under both models' fingerprints and the exact texts, so a re-run loads neither model."""
    if eval_cfg.backend != "hf":
        return [], {"skipped": "drift needs the HF backend (full next-token distributions)"}
    base_backend = tuned_backend if adapter is None else open_backend(model, model_cfg, eval_cfg, None)[0]
    base_fp = model_fingerprint(model, model_cfg, eval_cfg, None)
    cached = CachedBackend(base_backend, store, base_fp, eval_cfg.batch_size, log=lambda m: None) if store \
        else base_backend
    prompts = [p["question"] for p in drift_prompts(cfg.drift_prompts)]
    replies = [g.text for g in cached.generate(prompts, cfg.drift_max_new_tokens)]
    chats = [base_backend.chat(p) for p in prompts]
    user_text = Path(cfg.drift_text).read_text(encoding="utf-8") if cfg.drift_text else None
    key = result_key(f"{base_fp}|{tuned_fp}", "drift", json.dumps([chats, replies, user_text]), {})
    if store is not None and (hit := store.get_many([key]).get(key)) is not None:
        return hit["rows"], hit["result"]
    rows = drift.drift(base_backend.model, tuned_backend.model, tuned_backend.tok, chats, replies,
                       [f"general-{i:03d}" for i in range(len(prompts))])
    result = drift.summary(rows)
    if cfg.drift_text:
        result["text"] = drift.text_nll(base_backend.model, tuned_backend.model, tuned_backend.tok, cfg.drift_text)
    if store is not None:
        store.put_many({key: {"rows": rows, "result": result}})
    return rows, result
