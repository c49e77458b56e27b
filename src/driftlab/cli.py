"""driftlab's command line: parse, load the config, call one stage. No logic lives here."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from driftlab.errors import DriftlabError

app = typer.Typer(help="Fine-tune a small reasoning LM and measure what it gained and what it cost.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
model_app = typer.Typer(help="Prepare and inspect models.", no_args_is_help=True)
data_app = typer.Typer(help="Build train/eval data.", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.add_typer(data_app, name="data")
console = Console()

DEFAULT_CONFIG = Path("configs/default.yaml")
ConfigOpt = typer.Option(DEFAULT_CONFIG, "--config", "-c", help="Study config (YAML).")
SetOpt = typer.Option(None, "--set", "-s", help="Override a config key: --set train.learning_rate=5e-4 (repeatable).")
ModelOpt = typer.Option(None, "--model", "-m", help="'embedded', an HF model id, or a local checkpoint dir.")
NoCacheOpt = typer.Option(False, "--no-cache", help="Recompute everything; neither read nor write the results store "
                          "or the train cache.")


def _load(config: Path, overrides: Optional[list[str]], model: Optional[str] = None, no_cache: bool = False):
    from driftlab.config import load_config

    overrides = list(overrides or [])
    if model:
        overrides.append(f"model.name_or_path={model}")
    if no_cache:
        overrides += ["eval.cache=false", "train.cache=false"]
    return load_config(config, overrides)


def _inputs(config: Path, overrides: Optional[list[str]], model: Optional[str], no_cache: bool = False):
    """Config, data and model, all validated before anything is written."""
    from driftlab.data import build_data
    from driftlab.models import resolve_model

    cfg = _load(config, overrides, model, no_cache)
    return cfg, build_data(cfg.data, cfg.seed), resolve_model(cfg.model.name_or_path)


def _fail(err: Exception) -> None:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(2)


@model_app.command("prepare")
def model_prepare(force: bool = typer.Option(False, help="Convert again even if the cached checkpoint exists.")):
    """Convert the embedded SmolLM2-135M-Instruct GGUF into a cached safetensors checkpoint (once)."""
    from driftlab.models import driftlab_home, prepare_embedded, resolve_model

    try:
        path = prepare_embedded(force=force)
        resolved = resolve_model("embedded")
    except DriftlabError as err:
        _fail(err)
    console.print(f"embedded model ready: {path}  (fingerprint {resolved.fingerprint}, DRIFTLAB_HOME={driftlab_home()})")


@data_app.command("build")
def data_build(config: Path = ConfigOpt, set_: Optional[list[str]] = SetOpt,
               out: Optional[Path] = typer.Option(None, help="Output dir (must not exist); default: a new run dir.")):
    """Build train/eval items, dedup them, and check train/eval contamination."""
    from driftlab.data import build_data
    from driftlab.data.build import write_data

    try:
        cfg = _load(config, set_)
        bundle = build_data(cfg.data, cfg.seed)
    except DriftlabError as err:
        _fail(err)
    out_dir = _out_dir(out, cfg, "data")
    write_data(bundle, out_dir)
    console.print_json(json.dumps(bundle.report))
    console.print(f"data written to {out_dir}")


@app.command("train")
def train(config: Path = ConfigOpt, set_: Optional[list[str]] = SetOpt, model: Optional[str] = ModelOpt,
          variant: Optional[str] = typer.Option(None, help="Apply this variant's train overrides."),
          resume: Optional[Path] = typer.Option(None, help="Continue this train run dir from its last checkpoint "
                                                "(its own config and training set; other options are ignored)."),
          no_cache: bool = NoCacheOpt,
          out: Optional[Path] = typer.Option(None, help="Output dir (must not exist); default: a new run dir.")):
    """Fine-tune on the config's target task (train.method: lora, dora, qlora, full, svf) with TRL."""
    from driftlab.data.build import write_data
    from driftlab.runs import is_main_process
    from driftlab.train import resume_training, train_model

    try:
        if resume is not None:
            summary = resume_training(resume)
            console.print(f"resumed: {summary['artifact']}  final loss {summary['final_loss']}")
            return
        cfg, bundle, resolved = _inputs(config, set_, model, no_cache)
        train_cfg = cfg.train
        if variant:
            match = [v for v in cfg.variants if v.name == variant]
            if not match:
                raise DriftlabError(f"--variant {variant!r}: no such variant (have {[v.name for v in cfg.variants]})")
            train_cfg = cfg.variant_train(match[0])
    except DriftlabError as err:
        _fail(err)
    out_dir = _out_dir(out, cfg, "train")
    if is_main_process():
        write_data(bundle, out_dir / "data")
    try:
        summary = train_model(resolved, cfg.model, train_cfg, bundle.train, out_dir, cfg.seed, bundle.eval_questions(),
                              cfg.eval)
    except DriftlabError as err:
        _fail(err)
    if not is_main_process():
        return
    if (summary.get("cache") or {}).get("hit"):
        console.print(f"identical run found in the train cache (key {summary['cache']['key']}); artifact copied, "
                      "not retrained (--no-cache trains anyway)")
    console.print(f"{summary['method']}: {summary['artifact']}  trainable {summary['trainable_params']:,} "
                  f"({summary['trainable_fraction']:.3%})  final loss {summary['final_loss']:.4f}  "
                  f"{summary['tokens_per_s']:.0f} tokens/s")


@app.command("export")
def export(adapter: Path = typer.Option(..., help="What a fine-tune wrote (PEFT adapter, SVF expert) or its train "
                                        "run dir."),
           model: str = typer.Option("embedded", "--model", "-m", help="The base model it was trained on."),
           out: Path = typer.Option(..., help="Dir for the merged checkpoint (must not exist).")):
    """Merge a fine-tune into its base model and save one ordinary checkpoint (safetensors + tokenizer), loadable
    by any tool, vLLM included."""
    from driftlab.models import find_artifact, load_model, resolve_model, save_checkpoint

    try:
        artifact = find_artifact(adapter)
        resolved = resolve_model(model)
        if out.exists():
            raise DriftlabError(f"{out}: already exists; driftlab never overwrites")
        lm, tok = load_model(resolved, "float32", "cpu", artifact)  # merged and saved at full precision
    except DriftlabError as err:
        _fail(err)
    save_checkpoint(lm, tok, out)
    console.print(f"merged checkpoint: {out}  (driftlab eval --model {out})")


@app.command("svf-combine")
def svf_combine(experts: list[Path] = typer.Argument(..., help="SVF expert dirs (or train run dirs holding expert/)."),
                weights: Optional[list[float]] = typer.Option(None, "--weight", "-w",
                                                              help="One per expert (repeatable); default: equal."),
                out: Path = typer.Option(..., help="Dir for the combined expert (must not exist).")):
    """Combine SVF experts into one: a weighted sum of their singular-value scales (Transformer²)."""
    from driftlab.models import find_artifact
    from driftlab.train.svf import EXPERT_META, combine_experts, is_expert, load_expert, save_vectors

    try:
        dirs = [find_artifact(e) for e in experts]
        if not all(is_expert(d) for d in dirs):
            raise DriftlabError(f"not SVF experts: {[str(d) for d in dirs if not is_expert(d)]}")
        weights = list(weights or [1 / len(dirs)] * len(dirs))
        if len(weights) != len(dirs):
            raise DriftlabError(f"{len(dirs)} experts but {len(weights)} --weight values")
        metas = [json.loads((d / EXPERT_META).read_text()) for d in dirs]
        if len({m.get("base_fingerprint") for m in metas}) > 1:
            raise DriftlabError("the experts were trained on different base models")
        combined = combine_experts([load_expert(d) for d in dirs], weights)
    except (DriftlabError, ValueError) as err:
        _fail(err)
    if out.exists():
        _fail(DriftlabError(f"{out}: already exists; driftlab never overwrites"))
    save_vectors(combined, out, {"base_fingerprint": metas[0].get("base_fingerprint"),
                                 "combined_from": [str(d) for d in dirs], "weights": weights})
    console.print(f"combined expert: {out}")


@app.command("eval")
def evaluate(config: Path = ConfigOpt, set_: Optional[list[str]] = SetOpt, model: Optional[str] = ModelOpt,
             adapter: Optional[Path] = typer.Option(None, help="What a fine-tune wrote: a PEFT adapter, an SVF "
                                                    "expert, a full checkpoint, or the train run dir holding it."),
             no_cache: bool = NoCacheOpt,
             out: Optional[Path] = typer.Option(None, help="Output dir (must not exist); default: a new run dir.")):
    """Evaluate a model (optionally with an adapter) on every suite of the config."""
    from driftlab.eval import evaluate_model

    try:
        if adapter is not None:
            from driftlab.models import find_artifact

            adapter = find_artifact(adapter)
        cfg, bundle, resolved = _inputs(config, set_, model, no_cache)
    except DriftlabError as err:
        _fail(err)
    out_dir = _out_dir(out, cfg, "eval")
    suite_cfgs = cfg.data.suite_configs()
    try:
        summary = evaluate_model(resolved, cfg.model, bundle.suites, suite_cfgs, cfg.eval, out_dir, adapter=adapter,
                                 shots=bundle.shots)
    except DriftlabError as err:
        _fail(err)
    table = Table("suite", "n", "accuracy", "chance", "format")
    for name, m in summary["suites"].items():
        table.add_row(name, str(m["n"]), f"{m['accuracy']:.1%}", f"{m['chance']:.1%}", f"{m['format_rate']:.0%}")
    console.print(table)
    console.print(f"results written to {out_dir}")


@app.command("probe")
def probe(config: Path = ConfigOpt, set_: Optional[list[str]] = SetOpt, model: Optional[str] = ModelOpt,
          adapter: Optional[Path] = typer.Option(None, help="What a fine-tune wrote (adapter, SVF expert, full "
                                                 "checkpoint) or its train run dir; default: the base model."),
          probes: Optional[str] = typer.Option(None, help="Comma-separated subset of faithfulness, diversity, "
                                               "drift, shortcuts; default: the config's probes.run, else all."),
          no_cache: bool = NoCacheOpt,
          out: Optional[Path] = typer.Option(None, help="Output dir (must not exist); default: a new run dir.")):
    """Run probes (CoT faithfulness, diversity/format collapse, drift, shortcuts) on one model."""
    from driftlab.models import find_artifact
    from driftlab.probes.run import run_probes

    overrides = list(set_ or [])
    if probes:
        overrides.append(f"probes.run=[{probes}]")
    try:
        cfg, bundle, resolved = _inputs(config, overrides, model, no_cache)
        if not cfg.probes.run:
            cfg.probes.run = ["faithfulness", "diversity", "drift", "shortcuts"]
        artifact = find_artifact(adapter) if adapter is not None else None
    except DriftlabError as err:
        _fail(err)
    out_dir = _out_dir(out, cfg, "probe")
    name = cfg.probes.suite or cfg.data.target.name
    suite = cfg.data.suite_configs()[name]
    try:
        summary = run_probes(resolved, cfg.model, cfg.eval, cfg.probes, suite, bundle.suites[name],
                             bundle.shots.get(name, []), out_dir, artifact)
    except DriftlabError as err:
        _fail(err)
    console.print_json(json.dumps(summary["probes"]))
    console.print(f"probe results written to {out_dir} (seconds per probe: {summary['timings_s']})")


@app.command("compare")
def compare(a: str = typer.Argument(..., help="Model A (usually the base): <study run>:<model> (base or a variant "
                                    "name), an eval dir (eval.json), a probe dir (probes.json)."),
            b: str = typer.Argument(..., help="Model B (usually the fine-tune), on the same items."),
            config: Optional[Path] = typer.Option(None, "--config", "-c",
                                                  help="Study config for the 'compare' block, seed and runs_dir; "
                                                       "default: built-in defaults."),
            set_: Optional[list[str]] = SetOpt,
            out: Optional[Path] = typer.Option(None, help="Output dir for compare.json (must not exist); default: "
                                               "a new run dir.")):
    """Paired comparison of two models: every suite × strategy (difference, paired bootstrap CI, exact McNemar,
    Benjamini-Hochberg, floor flag) and every probe metric (difference, paired bootstrap CI)."""
    from driftlab.compare.paired import compare_results
    from driftlab.config import CompareConfig
    from driftlab.runs import new_run_dir, write_json

    try:
        if out is not None and out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise DriftlabError(f"--out {out}: exists and is not an empty directory; driftlab never overwrites a run")
        study_cfg = _load(config, set_) if config is not None else None
        cmp_cfg = study_cfg.compare if study_cfg else CompareConfig()
        result = compare_results(a, b, cmp_cfg, study_cfg.seed if study_cfg else 0)
    except DriftlabError as err:
        _fail(err)
    if result["suites"]:
        table = Table("suite", "n", "A", "B", "diff (pts)", f"{cmp_cfg.confidence:.0%} CI", "McNemar p", "BH p",
                      "floor", title=f"{a}  →  {b}")
        for suite, r in result["suites"].items():
            table.add_row(suite, str(r["n"]), f"{r['base_acc']:.1%}", f"{r['tuned_acc']:.1%}",
                          f"{100 * r['diff']:+.1f}", f"[{100 * r['ci95'][0]:+.1f}, {100 * r['ci95'][1]:+.1f}]",
                          f"{r['mcnemar_p']:.3g}", f"{r['p_bh']:.3g}", "yes" if r["floor"] else "no")
        console.print(table)
    if result["probes"]:
        table = Table("probe", "metric", "n", "A", "B", "diff", f"{cmp_cfg.confidence:.0%} CI")
        for probe, metrics in result["probes"].items():
            for metric, r in metrics.items():
                table.add_row(probe, metric, str(r["n"]), f"{r['base']:.3f}", f"{r['tuned']:.3f}", f"{r['diff']:+.3f}",
                              f"[{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}]")
        console.print(table)
    m = result["method"]
    console.print(f"CIs: {m['ci']}, {m['n_bootstrap']} resamples, seed {m['seed']}; {m['binary_test']}; "
                  f"{m['multiple_comparisons']}; floor: {m['floor']}.")
    out_dir = out or new_run_dir(study_cfg.runs_dir if study_cfg else Path("runs"),
                                 f"{study_cfg.name}-compare" if study_cfg else "compare")
    write_json(out_dir / "compare.json", result)
    console.print(f"written to {out_dir / 'compare.json'}")


@app.command("sweep")
def sweep(run: Path = typer.Argument(..., help="A study run dir (holds study.json and train/<variant>/)."),
          scales: Optional[str] = typer.Option(None, help="Comma-separated scales strictly between 0 and 1 (0 is the "
                                               "base eval and 1 the variant's, both already in the run); default: "
                                               "the config's sweep.scales, else 0.25,0.5,0.75."),
          limit: Optional[int] = typer.Option(None, min=1, help="First N items per suite (default: the config's "
                                              "sweep.limit; without either, every item the study evaluated)."),
          out: Optional[Path] = typer.Option(None, help="Output dir (must not exist); default: a new run dir.")):
    """Scale every fine-tune of a study between base and itself (LoRA scale, SVF z, WiSE-FT for full), evaluate
    zero-shot at each scale, and plot target gain against held-out retention with the Pareto frontier."""
    from pydantic import ValidationError

    from driftlab.compare.sweep import pareto_html, plan_sweep, run_sweep
    from driftlab.config import SweepConfig
    from driftlab.models import find_artifact, resolve_model
    from driftlab.runs import read_jsonl, write_text_atomic

    try:
        if not (run / "study.json").exists():
            raise DriftlabError(f"{run}: not a study run dir (no study.json)")
        cfg = _load(run / "config.yaml", [])
        spec = SweepConfig(scales=[float(a) for a in scales.split(",")] if scales else
                           cfg.sweep.scales or [0.25, 0.5, 0.75], limit=limit or cfg.sweep.limit)
        study = json.loads((run / "study.json").read_text())
        model = resolve_model(cfg.model.name_or_path)
        # find_artifact: the run dir may have moved since its train summaries were written
        artifacts = {v["name"]: find_artifact(run / "train" / v["name"]) for v in study["variants"]}
        suites = {n: read_jsonl(run / "data" / "suites" / f"{n}.jsonl") for n in cfg.data.suite_configs()}
        roles = {s["name"]: s["role"] for s in study["suites"] if "@" not in s["name"]}
        floors = {s["name"]: s["floor"] for s in study["suites"]}
        plan_sweep(cfg, suites, roles, floors, list(artifacts), run / "eval", spec)  # fails before anything is written
    except ValidationError as err:
        _fail(DriftlabError(f"--scales {scales!r}: {err.errors()[0]['msg']}"))
    except (DriftlabError, ValueError) as err:
        _fail(err)
    out_dir = _out_dir(out, cfg, "sweep")
    try:
        result = run_sweep(model, cfg, suites, roles, floors, artifacts, run / "eval", out_dir, spec)
    except DriftlabError as err:
        _fail(err)
    write_text_atomic(out_dir / "pareto.html", pareto_html(result["points"]))
    table = Table("variant", "α", "target change (95% CI)", "held-out change (95% CI)", "frontier")
    for p in result["points"]:
        table.add_row(p["variant"], f"{p['alpha']:g}", _pts(p["target_gain"], p["target_ci"]),
                      _pts(p["heldout_change"], p["heldout_ci"]), "yes" if p["frontier"] else "")
    console.print(table)
    console.print(f"sweep written to {out_dir} (sweep.json, pareto.html)")


def _pts(diff: float, ci: list[float]) -> str:
    return f"{100 * diff:+.1f} [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"


@app.command("gate")
def gate(run: Path = typer.Argument(..., help="A study run dir (holds study.json)."),
         config: Optional[Path] = typer.Option(None, "--config", "-c", help="Config whose 'gate' rules apply; "
                                               "default: the run's own config.yaml."),
         set_: Optional[list[str]] = SetOpt):
    """Check a study against the config's gate rules. Exit 0: every rule holds for every variant; 1: a rule is
    violated (printed); 2: an error (no study, bad config, no rules)."""
    from driftlab.compare.gate import check_gate

    try:
        if not (run / "study.json").exists():
            raise DriftlabError(f"{run}: not a study run dir (no study.json)")
        cfg = _load(config or run / "config.yaml", set_)
        if not cfg.gate:
            raise DriftlabError("no gate rules: add a 'gate' list to the config (README: Regression gate)")
        results = check_gate(json.loads((run / "study.json").read_text()), cfg.gate)
    except DriftlabError as err:
        _fail(err)
    table = Table("variant", "rule", "subject", "diff", "95% CI", "result")
    for r in results:
        ci = f"[{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}]" if r["ci95"] else "n/a"
        table.add_row(r["variant"], str(r["rule"]), r["subject"], "n/a" if r["diff"] is None else f"{r['diff']:+.3f}",
                      ci, ("skipped (at floor)" if r["why"].startswith("skipped") else "pass") if r["passed"]
                      else f"FAIL: {r['why']}")
    console.print(table)
    failed = [r for r in results if not r["passed"]]
    console.print(f"gate: {'FAILED' if failed else 'passed'} ({len(failed)} of {len(results)} checks violated)")
    raise typer.Exit(1 if failed else 0)


@app.command("study")
def study(config: Path = ConfigOpt, set_: Optional[list[str]] = SetOpt, model: Optional[str] = ModelOpt,
          no_cache: bool = NoCacheOpt):
    """The whole experiment: base eval, every variant trained, evaluated and compared, one report."""
    from driftlab.study import run_study

    try:
        cfg = _load(config, set_, model, no_cache)
        run_dir = run_study(cfg)
    except DriftlabError as err:
        _fail(err)
    console.print(f"\nreport: {run_dir / 'report.html'}\n        {run_dir / 'report.md'}\nstudy:  {run_dir / 'study.json'}")


def _out_dir(out: Optional[Path], cfg, command: str) -> Path:
    from driftlab.runs import is_main_process, new_run_dir, world_size

    if world_size() > 1:  # under accelerate launch every rank must agree on one dir, and only rank 0 checks it
        if out is None:
            _fail(DriftlabError("a distributed launch needs --out (one run dir shared by every process)"))
        if not is_main_process():
            out.mkdir(parents=True, exist_ok=True)
            return out
    if out is None:
        return new_run_dir(cfg.runs_dir, f"{cfg.name}-{command}")
    if out.exists() and any(out.iterdir()):
        _fail(DriftlabError(f"{out}: already exists and is not empty; driftlab never overwrites a run"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def main() -> None:  # pragma: no cover
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # transformers 5 deprecation noise raised from inside PEFT/TRL, not from driftlab's own calls.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
