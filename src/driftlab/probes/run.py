"""Stage 4 — probes on one model under test (base, or base + a fine-tune's artifact): per-item JSONL per probe +
probes.json.

Recipe: open the model's backend (the same one the eval uses, behind the results store, so CoT replies and samples
the eval already produced come back without recomputation), take the first `probes.limit` items of the probe suite,
run each configured probe from the registry, time it, write its rows.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from driftlab.config import EvalConfig, ProbesConfig, SuiteConfig
from driftlab.eval.open import open_backend
from driftlab.models import ModelUnderTest
from driftlab.probes import PROBES, ProbeContext
from driftlab.runs import write_json, write_jsonl

console = Console()


def run_probes(model: ModelUnderTest, eval_cfg: EvalConfig, cfg: ProbesConfig, suite: SuiteConfig,
               items: list[dict], shots: list[dict], out_dir: Path) -> dict:
    suite_items, items = items, items[: cfg.limit]
    results, timings = {}, {}
    with open_backend(model, eval_cfg) as backend:
        ctx = ProbeContext(model, backend, eval_cfg, suite, items, shots, suite_items)
        for name in cfg.run:
            console.print(f"probe {name} ({len(items)} items)")
            t0 = time.perf_counter()
            rows, results[name] = PROBES.get(name).run(ctx, cfg.of(name))
            timings[name] = round(time.perf_counter() - t0, 2)
            write_jsonl(out_dir / f"{name}.jsonl", rows)
    summary = {"model": model.base.name, "artifact": str(model.artifact) if model.artifact else None,
               "suite": suite.name, "items": len(items), "probes": results, "timings_s": timings}
    write_json(out_dir / "probes.json", summary)
    return summary
