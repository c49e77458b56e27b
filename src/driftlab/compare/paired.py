"""Compare two evals of the same items: accuracy difference, paired bootstrap CI, exact McNemar, floor flag."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from driftlab.compare.stats import (adjust_p, at_floor, items_to_certify, loss_bound, mcnemar_exact,
                                    min_detectable_difference, paired_bootstrap_ci)
from driftlab.config import CompareConfig
from driftlab.errors import DataError
from driftlab.probes import PROBES
from driftlab.runs import read_jsonl


def compare_suite(base: list[dict], tuned: list[dict], chance: float, cfg: CompareConfig, seed: int = 0) -> dict:
    """Pair records by item id; both evals must cover exactly the same items."""
    base_by_id = {r["id"]: r for r in base}
    tuned_by_id = {r["id"]: r for r in tuned}
    if set(base_by_id) != set(tuned_by_id):
        missing = sorted(set(base_by_id) ^ set(tuned_by_id))[:5]
        raise DataError(f"cannot pair evals: item ids differ (e.g. {missing})")
    # Ids are positions within a suite; two evals built from different data (another seed, an edited file) share
    # ids but not questions, and pairing them would be meaningless.
    for item_id, b_rec in base_by_id.items():
        t_rec = tuned_by_id[item_id]
        if (b_rec.get("prompt"), b_rec.get("gold")) != (t_rec.get("prompt"), t_rec.get("gold")):
            raise DataError(f"cannot pair evals: item {item_id} has a different prompt or gold answer in the two "
                            "evals (were they built from the same data and seed?)")
    ids = sorted(base_by_id)
    b = np.array([bool(base_by_id[i]["correct"]) for i in ids])
    t = np.array([bool(tuned_by_id[i]["correct"]) for i in ids])
    lo, hi = paired_bootstrap_ci(b, t, cfg.n_bootstrap, cfg.confidence, seed)
    mc = mcnemar_exact(b, t)
    flips = mc["right_to_wrong"] + mc["wrong_to_right"]
    return {
        "n": len(ids),
        "base_acc": float(b.mean()),
        "tuned_acc": float(t.mean()),
        "diff": float(t.mean() - b.mean()),
        "ci95": [lo, hi],
        "mcnemar_p": mc["p_value"],
        "right_to_wrong": mc["right_to_wrong"],
        "wrong_to_right": mc["wrong_to_right"],
        "chance": chance,
        "floor": at_floor(int(b.sum()), len(ids), chance, cfg.floor_margin),
        "n_bootstrap": cfg.n_bootstrap,
        "confidence": cfg.confidence,  # the level of "ci95" (named for the default)
        # What these items can tell: the smallest difference one McNemar test at cfg.alpha (uncorrected) detects
        # with cfg.power at the observed flip rate, an exact bound on the loss (non-inferiority needs it as well as
        # the bootstrap CI), and how many items would certify "no loss beyond the margin" (compare/stats.py).
        "mde": min_detectable_difference(len(ids), flips, cfg.power, cfg.alpha),
        "loss_bound": loss_bound(len(ids), mc["right_to_wrong"], mc["wrong_to_right"], cfg.confidence),
        "margin": cfg.margin,
        "alpha": cfg.alpha,
        "power": cfg.power,
        "n_to_certify": items_to_certify(len(ids), mc["right_to_wrong"], mc["wrong_to_right"], cfg.margin,
                                         cfg.power, cfg.confidence),
    }


def compare_evals(base_dir: Path, tuned_dir: Path, cfg: CompareConfig, seed: int = 0) -> dict[str, dict]:
    """Compare every suite present in both eval directories (each holding <suite>.jsonl + eval.json)."""
    import json

    base_metrics = json.loads((Path(base_dir) / "eval.json").read_text())["suites"]
    tuned_metrics = json.loads((Path(tuned_dir) / "eval.json").read_text())["suites"]
    common = [s for s in base_metrics if s in tuned_metrics]
    if not common:
        raise DataError(f"{base_dir} and {tuned_dir} share no suites")
    rows = {
        suite: compare_suite(read_jsonl(Path(base_dir) / f"{suite}.jsonl"),
                             read_jsonl(Path(tuned_dir) / f"{suite}.jsonl"),
                             base_metrics[suite]["chance"], cfg, seed)
        for suite in common
    }
    return with_adjusted_p(rows, cfg.correction)


CORRECTIONS = {"bh": "Benjamini-Hochberg", "holm": "Holm", "bonferroni": "Bonferroni", "none": "no correction"}


def with_adjusted_p(rows: dict[str, dict], method: str = "bh") -> dict[str, dict]:
    """Add `p_adj` (and the `correction` used): McNemar p-values adjusted across all suites × strategies of one
    comparison, so "some suite changed" is not read off the smallest of many p-values."""
    names = list(rows)
    for n, p in zip(names, adjust_p([rows[n]["mcnemar_p"] for n in names], method)):
        rows[n]["p_adj"] = float(p)
        rows[n]["correction"] = method
    return rows


def compare_probe(probe: str, base: list[dict], tuned: list[dict], cfg: CompareConfig, seed: int = 0) -> dict:
    """Per metric the probe declares (its registry entry): mean over the items both runs could measure (a chain
    probe skips items without a chain), the paired difference and its bootstrap CI. Drift's `kl` is 0 for the base
    model by construction, so its row is the tuned model's KL with a CI; `nll_tuned` pairs the base's NLL with the
    tuned model's on the same text."""
    t_by_id = {r["id"]: r for r in tuned}
    if set(t_by_id) != {r["id"] for r in base}:
        differ = sorted(set(t_by_id) ^ {r["id"] for r in base})[:3]
        raise DataError(f"cannot pair {probe} probe rows: the two runs probed different items (e.g. {differ}); "
                        "were they run with the same config, data and probes.limit?")
    out = {}
    for key in [m.name for m in PROBES.get(probe).metrics]:
        pairs = [(float(b[key]), float(t_by_id[b["id"]][key])) for b in base
                 if b["id"] in t_by_id and b.get(key) is not None and t_by_id[b["id"]].get(key) is not None]
        pairs = [p for p in pairs if np.isfinite(p).all()]  # an item a metric could not measure (NaN) is left out
        if not pairs:
            continue
        b_vals, t_vals = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
        lo, hi = paired_bootstrap_ci(b_vals, t_vals, cfg.n_bootstrap, cfg.confidence, seed)
        out[key] = {"n": len(pairs), "base": float(b_vals.mean()), "tuned": float(t_vals.mean()),
                    "diff": float(t_vals.mean() - b_vals.mean()), "ci95": [lo, hi]}
    return out


def results_dirs(spec: str) -> tuple[Path | None, Path | None]:
    """(eval dir, probe dir) of one model named by `spec`: `<study run>:<model>` (base or a variant name), or a
    directory holding eval.json (what `driftlab eval` writes), probes.json (`driftlab probe`), or both."""
    run, _, name = spec.rpartition(":")
    if run and (Path(run) / "study.json").exists():
        root = Path(run)
        found = [d for d in (root / "eval" / name, root / "probes" / name) if d.is_dir()]
        if not found:
            models = sorted(d.name for d in (root / "eval").iterdir()) if (root / "eval").is_dir() else []
            raise DataError(f"{spec}: the study has no model {name!r} (models: {', '.join(models)})")
        return ((root / "eval" / name) if (root / "eval" / name / "eval.json").exists() else None,
                (root / "probes" / name) if (root / "probes" / name / "probes.json").exists() else None)
    path = Path(spec)
    if (path / "study.json").exists():
        raise DataError(f"{spec}: a study run holds several models; name one as {spec}:base or {spec}:<variant>")
    ev, pr = path / "eval.json", path / "probes.json"
    if not (ev.exists() or pr.exists()):
        raise DataError(f"{spec}: neither an eval dir (eval.json), a probe dir (probes.json) nor <study run>:<model>")
    return (path if ev.exists() else None, path if pr.exists() else None)


def compare_results(a: str, b: str, cfg: CompareConfig, seed: int = 0) -> dict:
    """Everything two models share, paired: every suite × strategy (difference, bootstrap CI, exact McNemar,
    Benjamini-Hochberg across those rows, floor flag) and every probe metric (difference, bootstrap CI)."""
    (a_eval, a_probe), (b_eval, b_probe) = results_dirs(a), results_dirs(b)
    suites = compare_evals(a_eval, b_eval, cfg, seed) if a_eval and b_eval else {}
    probes = {}
    if a_probe and b_probe:
        for name in PROBES.names():
            if (a_probe / f"{name}.jsonl").exists() and (b_probe / f"{name}.jsonl").exists():
                probes[name] = compare_probe(name, read_jsonl(a_probe / f"{name}.jsonl"),
                                             read_jsonl(b_probe / f"{name}.jsonl"), cfg, seed)
    if not suites and not probes:
        raise DataError(f"{a} and {b} share no eval suites and no probes")
    return {"a": a, "b": b, "suites": suites, "probes": probes,
            "method": {"ci": f"{cfg.confidence:.0%} percentile paired bootstrap over items",
                       "n_bootstrap": cfg.n_bootstrap, "seed": seed, "binary_test": "exact McNemar (binomial)",
                       "multiple_comparisons": f"{CORRECTIONS[cfg.correction]} across the {len(suites)} suite × "
                                               "strategy rows (p_adj); probe metrics carry bootstrap CIs only",
                       "power": f"mde: smallest difference one exact McNemar test (alpha {cfg.alpha}, uncorrected) "
                                f"detects with power {cfg.power} at the observed flip rate; n_to_certify: items for "
                                f"the CI to clear -{cfg.margin} with that power at the observed difference",
                       "floor": f"base accuracy not significantly above chance + {cfg.floor_margin} (one-sided "
                                "exact binomial, alpha 0.05)"}}
