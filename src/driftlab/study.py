"""The study recipe: prepare the model, build data, evaluate the base, then train, evaluate and compare every
variant, and write study.json, report.md and report.html into a fresh run directory."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import yaml
from rich.console import Console

from driftlab.compare import compare_evals
from driftlab.compare.gate import check_gate
from driftlab.compare.paired import compare_probe
from driftlab.compare.stats import at_floor
from driftlab.compare.sweep import SweepInputs, run_sweep
from driftlab.config import StudyConfig
from driftlab.data import build_data
from driftlab.data.build import variant_items, write_data
from driftlab.errors import ConfigError
from driftlab.eval import evaluate_model
from driftlab.models import ModelUnderTest, resolve_model
from driftlab.probes.run import run_probes
from driftlab.report import render_html, render_markdown
from driftlab.report.flips import collect_flips
from driftlab.runs import new_run_dir, read_jsonl, run_log, write_json, write_text_atomic
from driftlab.schema import GateResult, ResultKey, Study
from driftlab.train.sft import train_model

console = Console(stderr=True)


def run_study(cfg: StudyConfig) -> Path:
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    plan = study_plan(cfg)

    @contextmanager
    def stage(name: str):
        console.rule(f"[bold]{name}[/] {progress_line(plan, name, timings, time.perf_counter() - t_start)}")
        t0 = time.perf_counter()
        yield
        timings[name] = round(time.perf_counter() - t0, 2)

    # Inputs are validated (variants, data built in memory, model resolved) before the run directory exists, so
    # bad input leaves nothing behind.
    train_cfgs = {variant.name: cfg.variant_train(variant) for variant in cfg.variants}
    if len(train_cfgs) != len(cfg.variants):
        raise ConfigError("config key 'variants': variant names must be unique")
    with stage("model_prepare"):
        base_model = ModelUnderTest(resolve_model(cfg.model.name_or_path), cfg.model)
    with stage("data"):
        bundle = build_data(cfg.data, cfg.seed)
        train_sets = {v.name: variant_items(cfg, train_cfgs[v.name], f"variants.{i}.train.items", bundle)
                      for i, v in enumerate(cfg.variants)}  # a variant's own items: train.items
        console.print(f"items: {len(bundle.train)} to train on ({cfg.data.target.name}); to evaluate: "
                      + ", ".join(f"{name} {len(items)}" for name, items in bundle.suites.items()))
    run_dir = new_run_dir(cfg.runs_dir, cfg.name)
    run_log(run_dir)  # the libraries' warnings, off the terminal (cli.quiet_libraries)
    console.print(f"run directory: {run_dir}")
    write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    write_data(bundle, run_dir / "data")
    suite_cfgs = cfg.data.suite_configs()

    with stage("eval_base"):
        base = evaluate_model(base_model, bundle.suites, suite_cfgs, cfg.eval, run_dir / "eval" / "base",
                              label="base", shots=bundle.shots)
    probe_suite = cfg.probes.suite or cfg.data.target.name

    def probe(name: str, model: ModelUnderTest) -> dict | None:
        if not cfg.probes.run:
            return None
        with stage(f"probes:{name}"):
            return run_probes(model, cfg.eval, cfg.probes, suite_cfgs[probe_suite], bundle.suites[probe_suite],
                              bundle.shots.get(probe_suite, []), run_dir / "probes" / name)

    probes = {"base": probe("base", base_model), "variants": {}, "comparisons": []}
    variants, comparisons, from_start, logs = [], [], [], {}
    eval_prompts = bundle.eval_questions()
    for variant in cfg.variants:
        train_cfg = train_cfgs[variant.name]
        train_dir = run_dir / "train" / variant.name
        if train_cfg.init_from in train_cfgs:  # a variant trained before this one: its adapter in this run
            train_cfg = train_cfg.model_copy(update={"init_from": str(run_dir / "train" / train_cfg.init_from)})
        with stage(f"train:{variant.name}"):
            target, items = train_sets[variant.name]
            summary = train_model(base_model, train_cfg, items, train_dir, cfg.seed, eval_prompts, cfg.eval,
                                  target=target)
        tuned_model = base_model.tuned(Path(summary["artifact"]))
        trajectory = None
        if train_cfg.probe_every:
            with stage(f"trajectory:{variant.name}"):
                trajectory = over_training(base_model, train_dir, summary, train_cfg, bundle, suite_cfgs, cfg,
                                           run_dir / "trajectory" / variant.name)
        with stage(f"eval:{variant.name}"):
            tuned = evaluate_model(tuned_model, bundle.suites, suite_cfgs, cfg.eval, run_dir / "eval" / variant.name,
                                   label=variant.name, shots=bundle.shots)
        probes["variants"][variant.name] = probe(variant.name, tuned_model)
        with stage(f"compare:{variant.name}"):
            result = compare_evals(run_dir / "eval" / "base", run_dir / "eval" / variant.name, cfg.compare, cfg.seed)
            for name in cfg.probes.run:
                rows = [read_jsonl(run_dir / "probes" / m / f"{name}.jsonl") for m in ("base", variant.name)]
                for metric, row in compare_probe(name, *rows, cfg.compare, cfg.seed).items():
                    probes["comparisons"].append({"variant": variant.name, "probe": name, "metric": metric, **row})
        write_json(run_dir / "compare" / f"{variant.name}.json", result)
        comparisons += [{"variant": variant.name, "suite": suite, **row} for suite, row in result.items()]
        start = train_cfgs[variant.name].init_from
        if start in train_cfgs:  # RL after SFT: also against the variant it continued, paired the same way
            result = compare_evals(run_dir / "eval" / start, run_dir / "eval" / variant.name, cfg.compare, cfg.seed)
            write_json(run_dir / "compare" / f"{variant.name}.from-{start}.json", result)
            from_start += [{"variant": variant.name, "suite": suite, "against": start, **row}
                           for suite, row in result.items()]
        variants.append({"name": variant.name, "method": train_cfg.method, "train": summary,
                         "eval": tuned["suites"], "trajectory": trajectory})
        logs[variant.name] = read_jsonl(train_dir / "train_log.jsonl")

    suites = []
    for name, metrics in base["suites"].items():
        key = ResultKey.parse(name)
        family = suite_cfgs[key.suite].family
        suites.append({"name": name, "role": bundle.roles[key.suite], "n": metrics["n"], "strategy": key.strategy,
                       **({"family": family, "terms": suite_cfgs[key.suite].terms[0]} if family else {}),
                       "chance": metrics["chance"],
                       "floor": at_floor(metrics["correct"], metrics["n"], metrics["chance"],
                                         cfg.compare.floor_margin),
                       "base_metrics": metrics})
    sweep = None
    if cfg.sweep.scales and variants:
        with stage("sweep"):
            inputs = SweepInputs(base=base_model, cfg=cfg, suites=bundle.suites,
                                 roles={s["name"]: s["role"] for s in suites if ResultKey.parse(s["name"]).zero_shot},
                                 floors={s["name"]: s["floor"] for s in suites},
                                 artifacts={v["name"]: Path(v["train"]["artifact"]) for v in variants},
                                 eval_root=run_dir / "eval")
            sweep = run_sweep(inputs, cfg.sweep, run_dir / "sweep")
    timings["total"] = round(time.perf_counter() - t_start, 2)
    study = Study(name=cfg.name, seed=cfg.seed, run_dir=str(run_dir),
                  model={"name": base_model.base.name, "path": base_model.base.path,
                         "fingerprint": base_model.base.fingerprint},
                  variants=variants, suites=suites, comparisons=comparisons, from_start=from_start,
                  data=bundle.report, timings_s=timings,
                  probes=probes if cfg.probes.run else None, sweep=sweep)
    if cfg.gate:
        checks = check_gate(study, cfg.gate)
        study.gate = GateResult(passed=all(c.passed for c in checks), rules=[r.model_dump() for r in cfg.gate],
                                checks=checks)
    with stage("report"):
        study.write(run_dir / "study.json")
        write_text_atomic(run_dir / "report.md", render_markdown(study))
        flips = collect_flips(run_dir, study.variant_names())
        write_text_atomic(run_dir / "report.html", render_html(study, logs, flips))
    study.timings_s["report"] = timings["report"]
    study.write(run_dir / "study.json")
    return run_dir


def over_training(base_model: ModelUnderTest, train_dir: Path, summary: dict, train_cfg, bundle, suite_cfgs, cfg,
                  out_dir: Path) -> dict:
    """The fine-tune's kept points (train.probe_every), the base as step 0 and the end of training, measured on
    slices of the probe suites (probes/trajectory.py)."""
    from driftlab.artifacts import find_artifact
    from driftlab.probes.trajectory import measure, snapshots

    names = train_cfg.probe_suites or [cfg.data.target.name] + [
        s.name for s in cfg.data.heldout if s.mode == "generate"][:1]
    expanded = []  # a multi-step family's name stands for its members
    for n in names:
        expanded += [n] if n in bundle.suites else [k for k, c in suite_cfgs.items() if c.family == n]
    slices = {n: bundle.suites[n][: train_cfg.probe_items]
              for n in dict.fromkeys([cfg.data.target.name] + expanded)}  # the target always: format entropy
    # step 0 is where training started: the base, or the adapter it continued (train.init_from)
    start = find_artifact(Path(train_cfg.init_from)) if train_cfg.init_from else None
    points = [(0, start)] + snapshots(train_dir)
    if points[-1][0] != summary["steps"]:
        points.append((summary["steps"], Path(summary["artifact"])))
    return measure(base_model, points, slices, suite_cfgs, cfg.data.target.name, cfg.eval, out_dir)


def study_plan(cfg: StudyConfig) -> list[str]:
    """Every stage the study will run, in order: what the overall progress line counts."""
    probes = bool(cfg.probes.run)
    plan = ["model_prepare", "data", "eval_base"] + (["probes:base"] if probes else [])
    for v in cfg.variants:
        every = cfg.variant_train(v).probe_every
        plan += [f"train:{v.name}"] + ([f"trajectory:{v.name}"] if every else []) + [f"eval:{v.name}"]
        plan += ([f"probes:{v.name}"] if probes else []) + [f"compare:{v.name}"]
    return plan + (["sweep"] if cfg.sweep.scales and cfg.variants else []) + ["report"]


def progress_line(plan: list[str], name: str, done: dict[str, float], elapsed: float) -> str:
    """`[6/17] 2m10s elapsed, ~5m20s left besides sweep, report`. The time left sums, for each stage still to
    run, the mean time of the finished stages of its kind (eval_base stands for every eval, probes:base for every
    probe run); kinds that have not run yet are named instead of guessed."""
    def kind(stage: str) -> str:
        return stage.split(":")[0].removesuffix("_base")

    seen: dict[str, list[float]] = {}
    for stage, secs in done.items():
        seen.setdefault(kind(stage), []).append(secs)
    rest = plan[plan.index(name):] if name in plan else [name]
    line = f"[{plan.index(name) + 1 if name in plan else '?'}/{len(plan)}] {_clock(elapsed)} elapsed"
    known = [s for s in rest if kind(s) in seen]
    unknown = list(dict.fromkeys(kind(s) for s in rest if kind(s) not in seen))
    if not known:
        return line
    left = sum(sum(seen[kind(s)]) / len(seen[kind(s)]) for s in known)
    return f"{line}, ~{_clock(left)} left" + (f" besides {', '.join(unknown)}" if unknown else "")


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"
