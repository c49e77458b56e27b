"""driftlab's command line: parse, load the config, call one stage, print what it returned. No logic lives here;
every command's DriftlabError becomes one line on stderr and exit code 2 (`_errors`)."""

from __future__ import annotations

import functools
import json
import logging
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
config_app = typer.Typer(help="Show a resolved config, or every key a config takes.", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.add_typer(data_app, name="data")
app.add_typer(config_app, name="config")
console = Console()

DEFAULT_CONFIG = Path("configs/default.yaml")
ConfigOpt = typer.Option(DEFAULT_CONFIG, "--config", "-c", help="Study config (YAML).")
SetOpt = typer.Option(None, "--set", "-s", help="Override a config key: --set train.learning_rate=5e-4 (repeatable).")
ModelOpt = typer.Option(None, "--model", "-m", help="'embedded', an HF model id, or a local checkpoint dir.")
NoCacheOpt = typer.Option(False, "--no-cache", help="Recompute everything; neither read nor write the results store "
                          "or the train cache.")
OutOpt = typer.Option(None, help="Output dir (must not exist); default: a new run dir.")
ArtifactOpt = typer.Option(None, "--artifact", "--adapter", help="What a fine-tune produced (PEFT adapter, SVF "
                           "expert, full checkpoint) or the train run dir holding it; default: the base model.")


def _errors(command):
    """The one error handler: bad input or environment is one line naming the file/line or config key, exit 2."""
    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except DriftlabError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
    return run


def _load(config: Path, overrides: Optional[list[str]], model: Optional[str] = None, no_cache: bool = False):
    from driftlab.config import load_config

    overrides = list(overrides or [])
    if model:
        overrides.append(f"model.name_or_path={model}")
    if no_cache:
        overrides += ["eval.cache=false", "train.cache=false"]
    return load_config(config, overrides)


def _inputs(config: Path, overrides: Optional[list[str]], model: Optional[str], no_cache: bool = False,
            artifact: Optional[Path] = None):
    """Config, data and the model under test, all validated before anything is written."""
    from driftlab.artifacts import find_artifact
    from driftlab.data import build_data
    from driftlab.models import ModelUnderTest, resolve_model

    cfg = _load(config, overrides, model, no_cache)
    mut = ModelUnderTest(resolve_model(cfg.model.name_or_path), cfg.model,
                         find_artifact(artifact) if artifact is not None else None)
    return cfg, build_data(cfg.data, cfg.seed), mut


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        def v(name: str) -> str:
            try:
                return version(name)
            except PackageNotFoundError:
                return "not installed"

        typer.echo(f"driftlab {v('driftlab')} (torch {v('torch')}, transformers {v('transformers')}, trl {v('trl')}, "
                   f"peft {v('peft')})")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print driftlab's version and its training stack's, then exit."),
          verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the libraries' own progress bars, "
                                       "info messages and deprecation warnings (hidden by default).")):
    """Fine-tune a small reasoning LM and measure what it gained and what it cost."""
    if not verbose:
        quiet_libraries()


def quiet_libraries() -> None:
    """The libraries' noise off the terminal: transformers' and the hub's progress bars ("Loading weights" on every
    model load) and info logs; deprecation warnings, any warning raised inside an installed library and the records
    of TRL's, PEFT's, accelerate's and datasets' loggers go to the run's log.txt instead (runs.run_log; those raised
    before the run dir exists are held back until it does). driftlab's own warnings stay on the terminal.
    Environment variables a user set win; set before those libraries are imported (driftlab imports them lazily)."""
    from driftlab.runs import LIBRARY_LOG

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # TRL's "Tokenizing train dataset" bars
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import logging.handlers

    import driftlab

    logger = logging.getLogger(LIBRARY_LOG)
    logger.propagate = False  # never the terminal: without a handler, logging's last resort would print it
    for h in list(logger.handlers):
        logger.removeHandler(h)
    logger.addHandler(logging.handlers.MemoryHandler(10_000, flushLevel=logging.CRITICAL + 1))  # until a run dir
    for name in ("trl", "peft", "accelerate", "datasets"):  # their own loggers' warnings: the same place
        lib = logging.getLogger(name)
        lib.propagate = False
        if not any(isinstance(h, _ToLibraryLog) for h in lib.handlers):
            lib.addHandler(_ToLibraryLog())
    terminal = warnings.showwarning
    if getattr(terminal, "driftlab", False):  # already routed (a second command in one process)
        return
    own = Path(driftlab.__file__).resolve().parent

    def showwarning(message, category, filename, lineno, file=None, line=None):
        path = Path(filename).resolve()
        library = own not in path.parents and ({"site-packages", "dist-packages"} & set(path.parts))
        if library or issubclass(category, (DeprecationWarning, PendingDeprecationWarning, FutureWarning)):
            logging.getLogger(LIBRARY_LOG).warning(warnings.formatwarning(message, category, filename, lineno,
                                                                          line).rstrip())
        else:
            terminal(message, category, filename, lineno, file, line)

    showwarning.driftlab = True
    warnings.showwarning = showwarning


class _ToLibraryLog(logging.Handler):
    """Hands a library logger's records to driftlab's library log (the run's log.txt)."""

    def emit(self, record: logging.LogRecord) -> None:
        from driftlab.runs import LIBRARY_LOG

        logging.getLogger(LIBRARY_LOG).handle(record)


@config_app.command("show")
@_errors
def config_show(config: Path = ConfigOpt, set_: Optional[list[str]] = SetOpt, model: Optional[str] = ModelOpt):
    """The config as driftlab reads it: overrides applied, every default filled in, validated (YAML)."""
    import yaml

    cfg = _load(config, set_, model)
    typer.echo(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), nl=False)


@config_app.command("schema")
def config_schema(markdown: bool = typer.Option(False, "--markdown", help="As the docs/config.md page.")):
    """Every key a study config takes: type, default, description (generated from the models that validate it)."""
    from driftlab.config_doc import markdown as to_markdown
    from driftlab.config_doc import reference_rows

    rows = reference_rows()
    if markdown:
        typer.echo(to_markdown(rows), nl=False)
        return
    for r in rows:
        typer.echo(f"{r['key']}  ({r['type']}{', default ' + r['default'] if r['default'] else ''})"
                   + (f"\n    {r['description']}" if r["description"] else ""))


@model_app.command("prepare")
@_errors
def model_prepare(force: bool = typer.Option(False, help="Convert again even if the cached checkpoint exists.")):
    """Convert the embedded SmolLM2-135M-Instruct GGUF into a cached safetensors checkpoint (once)."""
    from driftlab.models import driftlab_home, prepare_embedded, resolve_model

    path = prepare_embedded(force=force)
    resolved = resolve_model("embedded")
    console.print(f"embedded model ready: {path}  (fingerprint {resolved.fingerprint}, DRIFTLAB_HOME={driftlab_home()})")


@data_app.command("build")
@_errors
def data_build(config: Path = ConfigOpt, set_: Optional[list[str]] = SetOpt, out: Optional[Path] = OutOpt):
    """Build train/eval items, dedup them, and check train/eval contamination."""
    from driftlab.data import build_data
    from driftlab.data.build import write_data

    cfg = _load(config, set_)
    bundle = build_data(cfg.data, cfg.seed)
    out_dir = _out_dir(out, cfg, "data")
    write_data(bundle, out_dir)
    console.print_json(json.dumps(bundle.report))
    console.print(f"data written to {out_dir}")


@app.command("train")
@_errors
def train(config: Path = ConfigOpt, set_: Optional[list[str]] = SetOpt, model: Optional[str] = ModelOpt,
          variant: Optional[str] = typer.Option(None, help="Apply this variant's train overrides."),
          resume: Optional[Path] = typer.Option(None, help="Continue this train run dir from its last checkpoint "
                                                "(its own config and training set; other options are ignored)."),
          no_cache: bool = NoCacheOpt, out: Optional[Path] = OutOpt):
    """Fine-tune on the config's target task with TRL (train.method: a registered method, see README)."""
    from driftlab.data.build import variant_items, write_data
    from driftlab.runs import is_main_process
    from driftlab.train.sft import resume_training, train_model

    if resume is not None:
        summary = resume_training(resume)
        console.print(f"resumed: {summary['artifact']}  final loss {summary['final_loss']}")
        return
    cfg, bundle, start = _inputs(config, set_, model, no_cache)
    train_cfg = cfg.variant_train_named(variant) if variant else cfg.train
    key = f"variants.{[v.name for v in cfg.variants].index(variant)}.train" if variant else "train"
    target, items = variant_items(cfg, train_cfg, f"{key}.items", bundle)
    out_dir = _out_dir(out, cfg, "train")
    if is_main_process():
        write_data(bundle, out_dir / "data")
    summary = train_model(start, train_cfg, items, out_dir, cfg.seed, bundle.eval_questions(), cfg.eval,
                          target=target)
    if not is_main_process():
        return
    if (summary.get("cache") or {}).get("hit"):
        console.print(f"identical run found in the train cache (key {summary['cache']['key']}); artifact copied, "
                      "not retrained (--no-cache trains anyway)")
    console.print(f"{summary['method']}: {summary['artifact']}  trainable {summary['trainable_params']:,} "
                  f"({summary['trainable_fraction']:.3%})  final loss {summary['final_loss']:.4f}  "
                  f"{summary['tokens_per_s']:.0f} tokens/s")


@app.command("export")
@_errors
def export(artifact: Path = typer.Option(..., "--artifact", "--adapter", help="What a fine-tune produced (PEFT "
                                         "adapter, SVF expert) or its train run dir."),
           config: Path = ConfigOpt, set_: Optional[list[str]] = SetOpt,
           model: Optional[str] = typer.Option(None, "--model", "-m", help="The base model it was trained on "
                                               "(as --model elsewhere); default: the config's model.name_or_path."),
           out: Path = typer.Option(..., help="Dir for the merged checkpoint (must not exist).")):
    """Merge a fine-tune into its base model and save one ordinary checkpoint (safetensors + tokenizer), loadable
    by any tool, vLLM included. The base model is the config's (model.name_or_path), unless --model names one."""
    from driftlab.models import export_merged

    base = model or _load(config, set_).model.name_or_path  # --model alone needs no config file
    export_merged(artifact, base, out)
    console.print(f"merged checkpoint: {out}  (driftlab eval --model {out})")


@app.command("svf-combine")
@_errors
def svf_combine(experts: list[Path] = typer.Argument(..., help="SVF expert dirs (or train run dirs holding expert/)."),
                weights: Optional[list[float]] = typer.Option(None, "--weight", "-w",
                                                              help="One per expert (repeatable); default: equal."),
                out: Path = typer.Option(..., help="Dir for the combined expert (must not exist).")):
    """Combine SVF experts into one: a weighted sum of their singular-value scales (Transformer²). Reads no config:
    the experts are all it needs."""
    from driftlab.artifacts import combine_expert_dirs

    combine_expert_dirs(experts, weights, out)
    console.print(f"combined expert: {out}")


@app.command("eval")
@_errors
def evaluate(config: Path = ConfigOpt, set_: Optional[list[str]] = SetOpt, model: Optional[str] = ModelOpt,
             artifact: Optional[Path] = ArtifactOpt, no_cache: bool = NoCacheOpt, out: Optional[Path] = OutOpt):
    """Evaluate a model (optionally with a fine-tune's artifact) on every suite of the config."""
    from driftlab.eval import evaluate_model
    from driftlab.report.terminal import print_eval_summary

    cfg, bundle, mut = _inputs(config, set_, model, no_cache, artifact)
    out_dir = _out_dir(out, cfg, "eval")
    summary = evaluate_model(mut, bundle.suites, cfg.data.suite_configs(), cfg.eval, out_dir, shots=bundle.shots)
    print_eval_summary(summary, out_dir, console, cfg.compare.floor_margin)


@app.command("probe")
@_errors
def probe(config: Path = ConfigOpt, set_: Optional[list[str]] = SetOpt, model: Optional[str] = ModelOpt,
          artifact: Optional[Path] = ArtifactOpt,
          probes: Optional[str] = typer.Option(None, help="Comma-separated registered probes (faithfulness, "
                                               "diversity, drift, shortcuts); default: the config's probes.run, "
                                               "else all."),
          no_cache: bool = NoCacheOpt, out: Optional[Path] = OutOpt):
    """Run probes (CoT faithfulness, diversity/format collapse, drift, shortcuts) on one model."""
    from driftlab.probes import PROBES
    from driftlab.probes.run import run_probes

    overrides = list(set_ or [])
    if probes:
        overrides.append(f"probes.run=[{probes}]")
    cfg, bundle, mut = _inputs(config, overrides, model, no_cache, artifact)
    if not cfg.probes.run:
        cfg.probes.run = PROBES.names()
    out_dir = _out_dir(out, cfg, "probe")
    name = cfg.probes.suite or cfg.data.target.name
    summary = run_probes(mut, cfg.eval, cfg.probes, cfg.data.suite_configs()[name], bundle.suites[name],
                         bundle.shots.get(name, []), out_dir)
    console.print_json(json.dumps(summary["probes"]))
    console.print(f"probe results written to {out_dir} (seconds per probe: {summary['timings_s']})")


@app.command("compare")
@_errors
def compare(a: str = typer.Argument(..., help="Model A (usually the base): <study run>:<model> (base or a variant "
                                    "name), an eval dir (eval.json), a probe dir (probes.json)."),
            b: str = typer.Argument(..., help="Model B (usually the fine-tune), on the same items."),
            config: Optional[Path] = typer.Option(None, "--config", "-c",
                                                  help="Study config for the 'compare' block, seed and runs_dir; "
                                                       "default: built-in defaults (then --set needs one)."),
            set_: Optional[list[str]] = SetOpt,
            out: Optional[Path] = typer.Option(None, help="Output dir for compare.json (must not exist); default: "
                                               "a new run dir.")):
    """Paired comparison of two models: every suite × strategy (difference, paired bootstrap CI, exact McNemar,
    Benjamini-Hochberg, floor flag) and every probe metric (difference, paired bootstrap CI)."""
    from driftlab.compare.paired import compare_results
    from driftlab.config import CompareConfig
    from driftlab.report.terminal import compare_table
    from driftlab.runs import new_run_dir, require_empty_dir, write_json
    from driftlab.schema import Comparison

    if out is not None:
        require_empty_dir(out, "--out")
    if set_ and config is None:
        raise DriftlabError("--set needs --config: without one, compare runs on built-in defaults")
    study_cfg = _load(config, set_) if config is not None else None
    cmp_cfg = study_cfg.compare if study_cfg else CompareConfig()
    result = compare_results(a, b, cmp_cfg, study_cfg.seed if study_cfg else 0)
    rows = [Comparison(variant=b, suite=suite, **r) for suite, r in result["suites"].items()]
    if rows:  # the tests behind each verdict; the changes and verdicts close the output (compare_table)
        table = Table(title=f"{a}  →  {b}: paired tests", title_justify="left")
        table.add_column("suite", no_wrap=True)  # a suite name is never cut; the numbers fold when narrow
        for header in ("n", "McNemar p", f"adj. p ({cmp_cfg.correction})", "MDE (pts)", "items to certify"):
            table.add_column(header, justify="right", overflow="fold")
        for r in rows:
            table.add_row(r.suite, str(r.n), f"{r.mcnemar_p:.3g}", f"{r.p_adj:.3g}",
                          "none" if r.mde is None else f"{100 * r.mde:.1f}",
                          "n/a" if r.n_to_certify is None else str(r.n_to_certify))
        console.print(table)
    if result["probes"]:
        table = Table("probe", "metric", "n", "A", "B", "diff", f"{cmp_cfg.confidence:.0%} CI")
        for probe_name, metrics in result["probes"].items():
            for metric, r in metrics.items():
                table.add_row(probe_name, metric, str(r["n"]), f"{r['base']:.3f}", f"{r['tuned']:.3f}",
                              f"{r['diff']:+.3f}", f"[{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}]")
        console.print(table)
    m = result["method"]
    console.print(f"CIs: {m['ci']}, {m['n_bootstrap']} resamples, seed {m['seed']}; {m['binary_test']}; "
                  f"{m['multiple_comparisons']}; {m['power']}; floor: {m['floor']}; verdicts: compare/verdict.py "
                  f"(margin {cmp_cfg.margin}).")
    out_dir = out or new_run_dir(study_cfg.runs_dir if study_cfg else Path("runs"),
                                 f"{study_cfg.name}-compare" if study_cfg else "compare")
    write_json(out_dir / "compare.json", result)
    if rows:
        console.print()
        console.print(compare_table(rows, _study_roles(b), f"{a}  →  {b}"))
    console.print(f"written to {out_dir / 'compare.json'}")


def _study_roles(spec: str) -> dict[str, str]:
    """Result key -> role when `spec` names a model of a study run (<run>:<model>); else nothing is known and every
    row is read as a held-out cost."""
    run = spec.rpartition(":")[0]
    if run and (Path(run) / "study.json").exists():
        from driftlab.schema import load_study

        try:
            return load_study(Path(run)).roles()
        except DriftlabError:  # compare itself needs only the per-item files
            return {}
    return {}


@app.command("sweep")
@_errors
def sweep(run: Path = typer.Argument(..., help="A study run dir (holds study.json and train/<variant>/)."),
          scales: Optional[str] = typer.Option(None, help="Comma-separated scales strictly between 0 and 1 (0 is the "
                                               "base eval and 1 the variant's, both already in the run); default: "
                                               "the config's sweep.scales, else 0.25,0.5,0.75."),
          limit: Optional[int] = typer.Option(None, min=1, help="First N items per suite (default: the config's "
                                              "sweep.limit; without either, every item the study evaluated)."),
          config: Optional[Path] = typer.Option(None, "--config", "-c", help="Config whose 'sweep' and 'compare' "
                                                "blocks apply; default: the run's own config.yaml. Model, data and "
                                                "eval are always the run's."),
          set_: Optional[list[str]] = typer.Option(None, "--set", "-s", help="Override a sweep or compare key: "
                                                   "--set sweep.limit=10 (repeatable)."),
          out: Optional[Path] = OutOpt):
    """Scale every fine-tune of a study between base and itself (LoRA scale, SVF z, WiSE-FT for full), evaluate
    zero-shot at each scale, and plot target gain against held-out retention with the Pareto frontier."""
    from driftlab.compare.sweep import inputs_from_run, plan_sweep, run_sweep, sweep_spec
    from driftlab.report.plots import pareto_html
    from driftlab.report.terminal import sweep_table
    from driftlab.runs import write_text_atomic
    from driftlab.schema import SweepResult

    inputs = inputs_from_run(run, config, set_)
    spec = sweep_spec(inputs.cfg, scales, limit)
    plan_sweep(inputs, spec)  # fails before anything is written
    out_dir = _out_dir(out, inputs.cfg, "sweep")
    result = SweepResult.model_validate(run_sweep(inputs, spec, out_dir))
    page = pareto_html(result.points)
    write_text_atomic(out_dir / "pareto.html", page)
    console.print(sweep_table(result.points))
    console.print(f"sweep written to {out_dir} (sweep.json, pareto.html {len(page.encode()) / 1e6:.1f} MB: "
                  "plotly.js inlined, opens offline)")


@app.command("gate")
@_errors
def gate(run: Path = typer.Argument(..., help="A study run dir (holds study.json)."),
         config: Optional[Path] = typer.Option(None, "--config", "-c", help="Config whose 'gate' rules apply; "
                                               "default: the run's own config.yaml."),
         set_: Optional[list[str]] = SetOpt):
    """Check a study against the config's gate rules. Exit 0: every rule holds for every variant; 1: a rule is
    violated (printed); 2: an error (no study, bad config, no rules)."""
    from driftlab.compare.gate import check_gate
    from driftlab.report.terminal import gate_table, print_gate_summary
    from driftlab.schema import load_study

    study = load_study(run)
    cfg = _load(config or run / "config.yaml", set_)
    if not cfg.gate:
        raise DriftlabError("no gate rules: add a 'gate' list to the config (README: Regression gate)")
    results = check_gate(study, cfg.gate)
    probe_rules = {i for i, rule in enumerate(cfg.gate) if rule.probe}
    console.print(gate_table(results, probe_rules))
    print_gate_summary(results, probe_rules, console)
    raise typer.Exit(1 if any(not r.passed for r in results) else 0)


@app.command("list")
@_errors
def list_registered():
    """What can be named in a config: the registered training methods, GRPO rewards, prompting strategies and probes,
    with their options (config keys) and the metrics they produce."""
    from driftlab.eval.strategies import STRATEGIES
    from driftlab.probes import PROBES
    from driftlab.train.methods import METHODS
    from driftlab.train.rewards import REWARDS

    for title, registry in (("training methods (train.method; options under train:)", METHODS),
                            ("GRPO rewards (train.grpo.rewards[].name, with a weight)", REWARDS),
                            ("prompting strategies (eval.strategies[].name; options beside it)", STRATEGIES),
                            ("probes (probes.run; options under probes:)", PROBES)):
        table = Table("name", "what it is", "options (default)", "metrics (better)", title=title)
        for entry in registry.entries().values():
            options = ", ".join(f"{name}={field.get_default(call_default_factory=True)!r}"
                                for name, field in entry.options.model_fields.items())
            metrics = ", ".join(f"{m.name} ({m.better})" for m in entry.metrics)
            table.add_row(entry.name, entry.summary, options, metrics)
        console.print(table)


@app.command("study")
@_errors
def study(config: Path = ConfigOpt, set_: Optional[list[str]] = SetOpt, model: Optional[str] = ModelOpt,
          no_cache: bool = NoCacheOpt):
    """The whole experiment: base eval, every variant trained, evaluated and compared, one report."""
    from driftlab.report.terminal import print_summary
    from driftlab.schema import load_study
    from driftlab.study import run_study

    run_dir = run_study(_load(config, set_, model, no_cache))
    print_summary(load_study(run_dir), run_dir, console)


def _out_dir(out: Optional[Path], cfg, command: str) -> Path:
    from driftlab.runs import is_main_process, new_run_dir, require_empty_dir, run_log, world_size

    if world_size() > 1:  # under accelerate launch every rank must agree on one dir, and only rank 0 checks it
        if out is None:
            raise DriftlabError("a distributed launch needs --out (one run dir shared by every process)")
        if not is_main_process():
            out.mkdir(parents=True, exist_ok=True)
            return out
    if out is None:
        out = new_run_dir(cfg.runs_dir, f"{cfg.name}-{command}")
    else:
        require_empty_dir(out, "--out")
        out.mkdir(parents=True, exist_ok=True)
    run_log(out)
    return out


def main() -> None:  # pragma: no cover
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # transformers 5 deprecation noise raised from inside PEFT/TRL, not from driftlab's own calls.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
