"""Scale sweep without retraining, and the gain-vs-retention Pareto (after Biderman et al. 2024, "LoRA Learns Less
and Forgets Less"). Each fine-tune is evaluated at scales α between the base model (α = 0) and itself (α = 1),
built in memory by models.load_model (LoRA/DoRA scaled before merging, SVF's z moved towards 1, a full fine-tune
interpolated with the base: WiSE-FT); no checkpoint is written, and a warm re-run loads nothing. Each point is
(mean change on the held-out suites that are not at their floor, change on the target); a point is on the frontier
when no other point has at least its gain and at least its retention, one of them strictly better.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from driftlab.artifacts import find_artifact
from driftlab.compare.stats import grouped_bootstrap_ci
from driftlab.config import CompareConfig, StudyConfig, SweepConfig
from driftlab.errors import DataError
from driftlab.models import ModelUnderTest
from driftlab.runs import read_jsonl


@dataclass
class SweepInputs:
    """What a sweep needs from a study: the base model, the config, the eval items per suite, each suite's role and
    floor flag, each variant's artifact, and the study's own per-item evals (the endpoints α = 0 and 1)."""
    base: ModelUnderTest
    cfg: StudyConfig
    suites: dict[str, list[dict]]
    roles: dict[str, str]
    floors: dict[str, bool]
    artifacts: dict[str, Path]
    eval_root: Path


# What `driftlab sweep --config/--set` may change: how the sweep runs and how its CIs are drawn. Model, data and eval
# settings stay the run's own, since α = 0 and 1 are the study's evals and every point is paired with them.
SETTINGS = ("sweep", "compare")


def inputs_from_run(run: Path, config: Path | None = None, overrides: list[str] | None = None) -> SweepInputs:
    """`driftlab sweep <run>`: the inputs read back from a study run dir (validated; nothing is written). The
    `sweep` and `compare` blocks come from `config` (default: the run's own config.yaml) with `overrides` applied;
    an override of any other key is an error rather than silently ignored."""
    from driftlab.config import load_config
    from driftlab.errors import ConfigError
    from driftlab.models import resolve_model
    from driftlab.schema import load_study

    study = load_study(run)
    cfg = load_config(run / "config.yaml", [])
    for item in overrides or []:
        if item.partition("=")[0].strip().split(".")[0] not in SETTINGS:
            raise ConfigError(f"--set {item!r}: a sweep takes only {' and '.join(SETTINGS)} keys; model, data and "
                              f"eval settings are the study run's own ({run / 'config.yaml'})")
    if config is not None or overrides:
        settings = load_config(config or run / "config.yaml", overrides)
        cfg = cfg.model_copy(update={key: getattr(settings, key) for key in SETTINGS})
    # find_artifact: the run dir may have moved since its train summaries were written
    return SweepInputs(
        base=ModelUnderTest(resolve_model(cfg.model.name_or_path), cfg.model), cfg=cfg,
        suites={n: read_jsonl(run / "data" / "suites" / f"{n}.jsonl") for n in cfg.data.suite_configs()},
        roles={s.name: s.role for s in study.suites if s.key.zero_shot},
        floors={s.name: s.floor for s in study.suites},
        artifacts={name: find_artifact(run / "train" / name) for name in study.variant_names()},
        eval_root=run / "eval")


def sweep_spec(cfg: StudyConfig, scales: str | None, limit: int | None) -> SweepConfig:
    """`driftlab sweep`'s --scales (comma-separated) and --limit over the config's sweep block; default scales
    0.25, 0.5, 0.75."""
    from pydantic import ValidationError

    from driftlab.errors import ConfigError

    try:
        values = [float(a) for a in scales.split(",")] if scales else cfg.sweep.scales or [0.25, 0.5, 0.75]
        return SweepConfig(scales=values, limit=limit or cfg.sweep.limit)
    except ValueError as err:  # a ValidationError is one too
        why = err.errors()[0]["msg"] if isinstance(err, ValidationError) else str(err)
        raise ConfigError(f"--scales {scales!r}: {why}") from None


def plan_sweep(inputs: SweepInputs, sweep: SweepConfig) -> tuple[dict[str, list[dict]], object]:
    """(items per swept suite, the zero-shot strategy to run) — checked before anything is computed: every swept
    suite must have base and tuned per-item results in eval_root covering those items (the endpoints)."""
    from driftlab.eval.strategies import zero_shot_config

    cfg, suites, roles, floors = inputs.cfg, inputs.suites, inputs.roles, inputs.floors
    # The study's own zero-shot settings (token budget, stop strings, slice), so α = 0 and 1 match the middle.
    zero = next((s for s in cfg.eval.strategies if s.name == "zero_shot"), zero_shot_config())
    limits = [n for n in (zero.limit, sweep.limit) if n is not None]
    limit = min(limits) if limits else None
    used = [n for n, r in roles.items() if (r == "target" or (r == "heldout" and not floors.get(n)))
            and (zero.suites is None or n in zero.suites or cfg.data.suite_configs()[n].mode == "loglik")]
    items = {n: suites[n][:limit] for n in used}
    for name in ["base", *inputs.artifacts]:
        for suite in used:
            path = inputs.eval_root / name / f"{suite}.jsonl"
            if not path.exists():
                raise DataError(f"{path}: missing; the sweep's endpoints are the study's own zero-shot evals")
            have = {r["id"] for r in read_jsonl(path)}
            missing = [it["id"] for it in items[suite] if it["id"] not in have]
            if missing:
                raise DataError(f"{path}: lacks {len(missing)} of the swept items (e.g. {missing[0]}); lower "
                                "sweep.limit to the study's zero-shot slice")
    return items, zero.model_copy(update={"limit": None, "suites": None})


def run_sweep(inputs: SweepInputs, sweep: SweepConfig, out_dir: Path) -> dict:
    """Evaluate every fine-tune (variant name -> artifact) zero-shot at each scale of `sweep` on the target and the
    held-out suites not at their floor (the only ones a point uses), and return the points, α = 0 and 1 taken from
    the base and tuned evals in eval_root/<name>/ on the same items. Writes <variant>@<α>/ evals and sweep.json."""
    from driftlab.eval import evaluate_model
    from driftlab.runs import write_json

    cfg, floors, eval_root = inputs.cfg, inputs.floors, inputs.eval_root
    items, zero = plan_sweep(inputs, sweep)
    used = list(items)
    roles = {n: r for n, r in inputs.roles.items() if n in items}
    suite_cfgs = {n: c for n, c in cfg.data.suite_configs().items() if n in used}
    eval_cfg = cfg.eval.model_copy(update={"strategies": [zero]})

    def records(eval_dir: Path) -> dict[str, list[dict]]:
        return {n: read_jsonl(eval_dir / f"{n}.jsonl") for n in used}

    base = records(eval_root / "base")
    points = []
    for variant, artifact in inputs.artifacts.items():
        at = {0.0: base, 1.0: records(eval_root / variant)}
        for alpha in sweep.scales:
            evaluate_model(inputs.base.tuned(find_artifact(artifact), alpha), items, suite_cfgs, eval_cfg,
                           out_dir / f"{variant}@{alpha:g}", label=f"{variant} α={alpha:g}")
            at[alpha] = records(out_dir / f"{variant}@{alpha:g}")
        for alpha in sorted(at):
            points.append({"variant": variant, "alpha": alpha,
                           **point(base, at[alpha], roles, floors, items, cfg.compare, cfg.seed)})
    for p, on in zip(points, frontier(points)):
        p["frontier"] = on
    result = {"scales": [0.0, *sweep.scales, 1.0], "limit": sweep.limit, "items": {n: len(v) for n, v in items.items()},
              "n_bootstrap": cfg.compare.n_bootstrap, "confidence": cfg.compare.confidence, "points": points}
    write_json(out_dir / "sweep.json", result)
    return result


def point(base: dict[str, list[dict]], other: dict[str, list[dict]], roles: dict, floors: dict,
          items: dict[str, list[dict]], cmp: CompareConfig, seed: int = 0) -> dict:
    """Target change and mean held-out change (suites not at floor) between two per-item evals, on the items of
    `items` only, each with a stratified paired bootstrap CI (items resampled within each suite)."""
    target = [n for n, r in roles.items() if r == "target"]
    held = [n for n, r in roles.items() if r == "heldout" and not floors.get(n)]
    diffs = {}
    for n in target + held:
        ids = [it["id"] for it in items[n]]
        b, o = ({r["id"]: float(bool(r["correct"])) for r in recs[n]} for recs in (base, other))
        diffs[n] = np.array([o[i] - b[i] for i in ids])
    out = {"target_gain": float(np.mean([diffs[n].mean() for n in target])),
           "target_ci": list(grouped_bootstrap_ci([diffs[n] for n in target], cmp.n_bootstrap, cmp.confidence, seed)),
           "heldout_change": float(np.mean([diffs[n].mean() for n in held])) if held else 0.0,
           "heldout_ci": (list(grouped_bootstrap_ci([diffs[n] for n in held], cmp.n_bootstrap, cmp.confidence, seed))
                          if held else [0.0, 0.0]),
           "suites": {n: float(d.mean()) for n, d in diffs.items()}}
    return out


def frontier(points: list[dict]) -> list[bool]:
    """Pareto-optimal flags: maximise both target_gain and heldout_change."""
    flags = []
    for p in points:
        dominated = any(q["target_gain"] >= p["target_gain"] and q["heldout_change"] >= p["heldout_change"]
                        and (q["target_gain"] > p["target_gain"] or q["heldout_change"] > p["heldout_change"])
                        for q in points)
        flags.append(not dominated)
    return flags
