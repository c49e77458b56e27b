"""The whole study on a tiny random Qwen3 model: every stage runs, every contract file is written."""

import json
import re

import yaml
from typer.testing import CliRunner

from driftlab.cli import app
from driftlab.runs import read_jsonl
from tests.conftest import ARITH, tiny_study_config


def test_tiny_study_end_to_end(tmp_path, tiny_model_dir):
    cfg_path = tmp_path / "tiny.yaml"
    cfg = tiny_study_config(tmp_path, tiny_model_dir)
    cfg["eval"]["strategies"] = [{"name": "zero_shot"}, {"name": "few_shot", "k": 2}, {"name": "cot"},
                                 {"name": "self_consistency", "n": 3}, {"name": "reflection"}]
    cfg["probes"] = {"run": ["faithfulness", "diversity", "drift", "shortcuts"], "limit": 6, "samples": 3,
                     "drift_prompts": 4, "drift_max_new_tokens": 6}
    # The random model never writes 'Answer:'; lenient extraction still finds numbers for the vote to count.
    cfg["data"]["target"]["extraction"] = "lenient"
    cfg["data"]["heldout"].append({"name": "steps", "source": "reasoning_gym", "task": "basic_arithmetic",
                                   "task_kwargs": {"min_digits": 1, "max_digits": 1, "operators": ["+"]},
                                   "terms": [2, 3], "scorer": "numeric", "extraction": "lenient", "size": 4,
                                   "max_new_tokens": 9})
    cfg_path.write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(app, ["study", "-c", str(cfg_path)])
    assert result.exit_code == 0, result.output
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1
    run = runs[0]
    assert run.name.endswith("-tiny") and "report.html" in result.output
    for rel in ["config.yaml", "data/train.jsonl", "data/data.json", "data/suites/arithmetic.jsonl",
                "eval/base/eval.json", "eval/base/capitals.jsonl", "eval/lora/eval.json",
                "train/lora/adapter/adapter_config.json", "train/lora/train.json", "train/lora/train_log.jsonl",
                "compare/lora.json", "report.md", "report.html", "study.json"]:
        assert (run / rel).exists(), rel

    study = json.loads((run / "study.json").read_text())
    assert [v["name"] for v in study["variants"]] == ["lora"]
    from driftlab.config import load_config
    from driftlab.study import study_plan

    plan = study_plan(load_config(cfg_path))  # the overall progress line counts the stages the study runs
    assert set(study["timings_s"]) - {"total"} == set(plan) and f"[{len(plan)}/{len(plan)}]" in result.output
    strategies = ["few_shot", "cot", "self_consistency", "reflection"]
    expected = {"arithmetic": "target", "capitals": "heldout", "copy_word": "heldout", "steps_2": "heldout",
                "steps_3": "heldout"}
    expected |= {f"{s}@{x}": expected[s] for s in ("arithmetic", "copy_word", "steps_2", "steps_3")
                 for x in strategies}
    assert {s["name"]: s["role"] for s in study["suites"]} == expected  # loglik suites are scored once
    for s in study["suites"]:
        assert set(s) >= {"name", "role", "n", "chance", "floor"}
        assert isinstance(s["floor"], bool)
    assert len(study["comparisons"]) == len(expected)
    family = {s["name"]: (s.get("family"), s.get("terms")) for s in study["suites"]}
    assert family["steps_3"] == ("steps", 3) and family["capitals"] == (None, None)
    base = json.loads((run / "eval/base/eval.json").read_text())["suites"]
    steps = [json.loads(line) for line in (run / "eval/base/steps_3.jsonl").read_text().splitlines()]
    assert all(r["prompt"].count("+") == 2 for r in steps)  # three terms
    assert max(r["n_tokens"] for r in steps) == 9  # the suite's own budget, not eval.max_new_tokens (6)
    assert 0 < base["arithmetic@self_consistency"]["consistency"] <= 1
    assert {"initial_accuracy", "changed_rate", "right_to_wrong", "wrong_to_right"} <= set(base["copy_word@reflection"])
    shots = [json.loads(line) for line in (run / "eval/base/arithmetic@few_shot.jsonl").read_text().splitlines()]
    assert len(shots) == 12 and all(r["strategy"] == "few_shot" for r in shots)
    for c in study["comparisons"]:
        assert set(c) >= {"variant", "suite", "base_acc", "tuned_acc", "diff", "ci95", "mcnemar_p", "floor"}
        assert c["ci95"][0] <= c["diff"] <= c["ci95"][1]
        assert 0 <= c["mcnemar_p"] <= 1 and isinstance(c["floor"], bool)
    assert set(study["timings_s"]) >= {"total", "data", "eval_base", "train:lora", "eval:lora"}

    probes = study["probes"]
    assert set(probes["base"]["probes"]) == {"faithfulness", "diversity", "drift", "shortcuts"}
    assert probes["base"]["probes"]["drift"]["kl"] == 0.0  # the base model against itself
    assert probes["variants"]["lora"]["probes"]["drift"]["kl"] > 0
    assert {(c["probe"], c["metric"]) for c in probes["comparisons"]} >= {("drift", "kl"), ("diversity", "self_bleu"),
                                                                           ("shortcuts", "copied_from_prompt")}
    assert all(set(t) == set(probes["base"]["probes"]) for t in [probes["base"]["timings_s"]])
    for rel in ["probes/base/probes.json", "probes/base/faithfulness.jsonl", "probes/lora/drift.jsonl"]:
        assert (run / rel).exists(), rel

    train = study["variants"][0]["train"]
    assert train["steps"] == 6 and 0 < train["trainable_fraction"] < 1
    from driftlab.models import has_bf16

    assert train["bf16"] is has_bf16("cpu") and train["gradient_checkpointing"] is False  # CPU defaults
    assert train["peak_memory_mb"] > 0 and (run / "train/lora/tensorboard").is_dir()
    log = [json.loads(line) for line in (run / "train/lora/train_log.jsonl").read_text().splitlines()]
    assert {"loss", "learning_rate", "grad_norm", "tokens_per_s"} <= set(log[1])
    losses = [r["loss"] for r in log if "loss" in r]
    assert losses[-1] < losses[0]  # lr 5e-3 on 32 items: the tiny model must fit the "Answer: N" format

    samples = [json.loads(line) for line in (run / "eval/base/arithmetic.jsonl").read_text().splitlines()]
    assert {"prompt", "output", "extracted", "gold", "correct", "latency_s"} <= set(samples[0])
    md = (run / "report.md").read_text()
    assert "## Strategies × variants" in md and "| arithmetic | self_consistency | lora |" in md
    assert "## Probes" in md and "| lora | drift | kl |" in md
    assert f"| lora | lora | {train['trainable_params']:,} (" in md and "<h2>Training</h2>" in (run / "report.html").read_text()
    html = (run / "report.html").read_text()
    assert "Strategies × variants" in html and "steps: accuracy by number of terms" in html
    assert "<script src=" not in html and "Plotly.newPlot" in html  # self-contained: plotly.js inlined

    # The answer reaches the terminal: suites x variants with the verdict word, the gate, the recommendation.
    from driftlab.compare.verdict import recommend
    from driftlab.schema import load_study

    out = " ".join(result.output.split())
    row = next(c for c in study["comparisons"] if c["suite"] == "arithmetic")
    assert "tiny: change vs base, points [95% CI]" in out and "arithmetic (target)" in out
    assert f"{100 * row['diff']:+.1f} [{100 * row['ci95'][0]:+.0f},{100 * row['ci95'][1]:+.0f}]" in out
    advice = recommend(load_study(run))["text"]
    assert f"recommended: {advice}" in out and f"**Recommended:** {advice}." in md and "Recommended:</b>" in html
    assert re.search(r"run directory: \d+\.\d MB", out) and not (run / "train/lora/checkpoints").exists()


def test_study_never_overwrites(tmp_path, tiny_model_dir):
    cfg = tiny_study_config(tmp_path, tiny_model_dir)
    cfg["variants"] = []
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    for _ in range(2):
        assert CliRunner().invoke(app, ["study", "-c", str(cfg_path)]).exit_code == 0
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2
    # The second run answers every item from the results store and gets the same per-item results.
    first, second = (json.loads((r / "eval/base/eval.json").read_text()) for r in runs)
    assert second["cache"] == {"hits": 12 + 10 + 8, "computed": 0}
    assert {k: v["accuracy"] for k, v in first["suites"].items()} == {
        k: v["accuracy"] for k, v in second["suites"].items()}
    for suite in ("arithmetic", "capitals", "copy_word"):
        a, b = ((run / "eval/base" / f"{suite}.jsonl").read_text().splitlines() for run in runs)
        strip = lambda rows: [{k: v for k, v in json.loads(r).items() if k not in ("cached", "latency_s")}
                              for r in rows]
        assert strip(a) == strip(b)


def test_probe_command_on_a_model(tmp_path, tiny_model_dir):
    cfg = tiny_study_config(tmp_path, tiny_model_dir)
    cfg["probes"] = {"limit": 4, "samples": 2, "drift_prompts": 3, "drift_max_new_tokens": 4}
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "probe-out"
    result = CliRunner().invoke(app, ["probe", "-c", str(cfg_path), "--probes", "drift,shortcuts", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "probes.json").read_text())
    assert set(summary["probes"]) == {"drift", "shortcuts"} and summary["items"] == 4
    assert summary["probes"]["drift"]["kl"] == 0.0 and set(summary["timings_s"]) == {"drift", "shortcuts"}
    bad = CliRunner().invoke(app, ["probe", "-c", str(cfg_path), "--probes", "vibes", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "probes.run" in bad.output and not (tmp_path / "x").exists()


def test_sweep_scales_each_fine_tune_between_base_and_itself(tmp_path, tiny_model_dir):
    cfg = tiny_study_config(tmp_path, tiny_model_dir)
    cfg["variants"] = [{"name": "lora"}, {"name": "svf", "train": {"method": "svf", "learning_rate": 2e-2}}]
    cfg["sweep"] = {"scales": [0.5], "limit": 6}
    cfg["gate"] = [{"suites": "target", "min_diff": 0.5}, {"probe": "drift.kl", "max_rise": 1.0}]
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    assert CliRunner().invoke(app, ["study", "-c", str(cfg_path)]).exit_code == 0
    run = next((tmp_path / "runs").iterdir())
    study = json.loads((run / "study.json").read_text())
    # The study ran the sweep (config 'sweep') and applied the gate; both are in the report.
    assert study["sweep"]["items"] == {"arithmetic": 6, "capitals": 6}  # copy_word is at its floor: not swept
    assert len(study["sweep"]["points"]) == 6 and (run / "sweep/lora@0.5/arithmetic.jsonl").exists()
    assert not (run / "sweep/models").exists()
    # a +50-point gain is out of reach, and no probes ran, so each variant fails both rules
    assert study["gate"]["passed"] is False and len(study["gate"]["checks"]) == 4
    md = (run / "report.md").read_text()
    assert "## Gain vs retention (scale sweep)" in md and "Gate (2 rules, 4 checks): **FAILED**" in md
    assert "- **lora** — gained:" in md and "gate: FAILED (2 checks)" in md
    out = tmp_path / "sweep"
    result = CliRunner().invoke(app, ["sweep", str(run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    sweep = json.loads((out / "sweep.json").read_text())
    assert sorted((p["variant"], p["alpha"]) for p in sweep["points"]) == [
        ("lora", 0.0), ("lora", 0.5), ("lora", 1.0), ("svf", 0.0), ("svf", 0.5), ("svf", 1.0)]
    assert sweep["points"] == study["sweep"]["points"]  # the command and the study agree (config's scales, limit)
    full = CliRunner().invoke(app, ["sweep", str(run), "--scales", "0.5", "--limit", "12", "--out", str(tmp_path / "s2")])
    assert full.exit_code == 0, full.output
    assert json.loads((tmp_path / "s2/sweep.json").read_text())["items"]["arithmetic"] == 12
    zero = [p for p in sweep["points"] if p["alpha"] == 0.0]
    assert all(p["target_gain"] == 0 and p["heldout_change"] == 0 for p in zero)  # α = 0 is the base model
    assert any(p["frontier"] for p in sweep["points"])
    assert not (out / "models").exists()  # each scaled checkpoint is deleted once evaluated
    assert "Plotly.newPlot" in (out / "pareto.html").read_text()
    bad = CliRunner().invoke(app, ["sweep", str(run), "--scales", "1.5", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and not (tmp_path / "x").exists()
    (run / "eval/svf/capitals.jsonl").unlink()  # an endpoint is gone: one error naming it, before any work
    gone = CliRunner().invoke(app, ["sweep", str(run), "--scales", "0.5", "--out", str(tmp_path / "y")])
    assert gone.exit_code == 2 and "eval/svf/capitals.jsonl: missing" in gone.output and not (tmp_path / "y").exists()


def test_warm_rerun_loads_no_weights(tmp_path, tiny_model_dir, monkeypatch):
    """Evals and probes answered entirely from the results store (drift's KL rows included) never load a model:
    what makes a warm study re-run cost seconds."""
    cfg = tiny_study_config(tmp_path, tiny_model_dir)
    cfg["variants"] = []
    cfg["probes"] = {"run": ["faithfulness", "diversity", "drift", "shortcuts"], "limit": 4, "samples": 2,
                     "drift_prompts": 3, "drift_max_new_tokens": 4}
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    assert CliRunner().invoke(app, ["study", "-c", str(cfg_path)]).exit_code == 0

    import driftlab.models as models

    def no_loading(*args, **kwargs):
        raise AssertionError("a fully cached re-run loaded a model")

    monkeypatch.setattr(models, "load_model", no_loading)  # what ModelUnderTest.load calls
    result = CliRunner().invoke(app, ["study", "-c", str(cfg_path)])
    assert result.exit_code == 0, result.output
    first, second = sorted((tmp_path / "runs").iterdir())
    for rel in ["eval/base/eval.json", "probes/base/drift.jsonl"]:
        a, b = ((run / rel).read_text() for run in (first, second))
        if rel.endswith(".jsonl"):
            assert a == b
        else:  # latencies differ (a cached row keeps its own); the verdicts may not
            assert {k: v["correct"] for k, v in json.loads(a)["suites"].items()} == {
                k: v["correct"] for k, v in json.loads(b)["suites"].items()}


def test_rl_after_sft_with_curves_over_training(tmp_path, tiny_model_dir, monkeypatch):
    """A study with an SFT variant and GRPO continuing it (init_from by variant name), both kept every 3 steps: the
    trajectory (base as step 0, each kept point, accuracy with Wilson intervals, format entropy, KL) reaches
    study.json and both reports, the GRPO row says what it was rewarded for, and a warm re-run loads no model."""
    cfg = tiny_study_config(tmp_path, tiny_model_dir)
    cfg["data"]["target"]["extraction"] = "lenient"
    cfg["train"].update(max_steps=6, save_steps=3, probe_every=3, probe_items=5)
    cfg["variants"] = [{"name": "sft"},
                       {"name": "rl", "train": {"method": "grpo", "init_from": "sft", "learning_rate": 1e-3,
                                                "probe_suites": ["copy_word"],  # the target is always measured
                                                "items": {"task_kwargs": {**ARITH["task_kwargs"], "min_digits": 3,
                                                                          "max_digits": 3}},  # its own items
                                                "grpo": {"group": 2, "prompts_per_step": 2,
                                                         "max_completion_length": 6}}}]
    cfg["probes"] = {"drift_prompts": 3, "drift_max_new_tokens": 4}
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(app, ["study", "-c", str(cfg_path)])
    assert result.exit_code == 0, result.output
    run = next((tmp_path / "runs").iterdir())
    study = json.loads((run / "study.json").read_text())
    sft, rl = study["variants"]
    assert rl["train"]["objective"] == "grpo" and rl["train"]["config"]["init_from"] == str(run / "train/sft")
    assert rl["train"]["grpo"]["steps"] == 6
    digits = {v: {r["meta"]["num_digits"] for r in read_jsonl(run / "train" / v / "train_set.jsonl")}
              for v in ("sft", "rl")}
    assert digits == {"sft": {2}, "rl": {3}}  # train.items: the GRPO variant drew its own, harder items
    start = {r["suite"]: r for r in study["from_start"]}  # RL after SFT, also paired against the SFT it continued
    assert {r["variant"] for r in study["from_start"]} == {"rl"} and {r["against"] for r in study["from_start"]} == {"sft"}
    sft_acc = json.loads((run / "eval/sft/eval.json").read_text())["suites"]["arithmetic"]["accuracy"]
    assert start["arithmetic"]["base_acc"] == sft_acc and (run / "compare/rl.from-sft.json").exists()
    for v in (sft, rl):
        t = v["trajectory"]
        assert [p["step"] for p in t["points"]] == [0, 3, 6] and t["suites"] == ["arithmetic", "copy_word"]
        first = t["points"][0]  # where training started: the base, or the SFT adapter GRPO continued
        if v is sft:
            assert first["kl"] == 0.0 and first["artifact"] is None
        else:
            assert first["kl"] > 0 and first["artifact"] == str(run / "train/sft/adapter")
        for p in t["points"]:
            s = p["suites"]["arithmetic"]
            assert s["n"] == 5 and s["ci95"][0] <= s["accuracy"] <= s["ci95"][1]
            assert p["format_entropy"] >= 0 and sum(p["formats"].values()) == 5
        assert t["points"][1]["kl"] > 0
        assert (run / "train" / v["name"] / "snapshots/step-00003/adapter_config.json").exists()
    md = (run / "report.md").read_text()
    assert "## Over training" in md and "### `rl` over training" in md and "GRPO from sft, reward 1×correct" in md
    assert "- **rl** against `sft` — gained:" in md and "- **rl** on `arithmetic`: " in md
    assert re.search(r"GRPO from sft, reward 1×correct: .*95% CI \[[^]]+\]: (rose|fell|cannot tell a change)", md)
    html = (run / "report.html").read_text()
    assert "rl over training" in html and "GRPO: mean reward per step" in html
    assert "<b>rl</b> against <code>sft</code> — gained:" in html
    assert "Every comparison against the start" in html

    import driftlab.models as models

    def no_loading(*args, **kwargs):
        raise AssertionError("a fully cached re-run loaded a model")

    monkeypatch.setattr(models, "load_model", no_loading)
    again = CliRunner().invoke(app, ["study", "-c", str(cfg_path)])
    assert again.exit_code == 0, again.output
    second = max((tmp_path / "runs").iterdir())
    strip = lambda points: [{k: v for k, v in p.items() if k != "artifact"} for p in points]  # noqa: E731
    assert strip(json.loads((second / "study.json").read_text())["variants"][1]["trajectory"]["points"]) == \
        strip(rl["trajectory"]["points"])


def test_a_users_trl_file_runs_through_a_study(tmp_path, tiny_model_dir):
    """TRL prompt/completion rows as the target, no train_size: every row after the eval items trains, on the
    completions as written; the study ends with its answer in the terminal."""
    rows = [{"prompt": [{"role": "user", "content": f"What is {i} + 2?"}],
             "completion": [{"role": "assistant", "content": f"{i} + 2 = {i + 2}\nAnswer: {i + 2}"}]} for i in range(30)]
    (tmp_path / "mine.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = tiny_study_config(tmp_path, tiny_model_dir)
    cfg["data"] = {"target": {"name": "mine", "source": "jsonl", "path": "mine.jsonl", "size": 10, "scorer": "numeric",
                              "extraction": "lenient"},
                   "heldout": [{"name": "capitals", "source": "jsonl", "path": "capitals.jsonl", "mode": "loglik",
                                "size": 10}]}
    cfg["train"].update(max_steps=3, save_steps=3)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(app, ["study", "-c", str(tmp_path / "c.yaml")])
    assert result.exit_code == 0, result.output
    run = next((tmp_path / "runs").iterdir())
    trained = read_jsonl(run / "train/lora/train_set.jsonl")
    assert len(trained) == 20 and "items: 20 to train on (mine)" in " ".join(result.output.split())
    written = {r["prompt"][0]["content"]: r["completion"][0]["content"] for r in rows}
    assert all(t["completion"] == written[t["question"]] for t in trained)
    assert "recommended:" in result.output
