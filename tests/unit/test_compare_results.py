"""`driftlab compare A B`: two models named by study run + model, eval dir or probe dir; suites and probe metrics."""

import json

import pytest
from typer.testing import CliRunner

from driftlab.cli import app
from driftlab.compare.paired import compare_results, results_dirs
from driftlab.compare.sweep import point
from driftlab.config import CompareConfig
from driftlab.errors import DataError

CFG = CompareConfig(n_bootstrap=300)


def _eval_dir(path, correct: dict[str, list[int]], chance: float = 0.25):
    path.mkdir(parents=True)
    (path / "eval.json").write_text(json.dumps({"suites": {s: {"chance": chance} for s in correct}}))
    for suite, outcomes in correct.items():
        rows = [{"id": f"{suite}-{i}", "prompt": f"q{i}", "gold": "1", "correct": bool(c)} for i, c in enumerate(outcomes)]
        (path / f"{suite}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _probe_dir(path, kl: list[float]):
    path.mkdir(parents=True)
    (path / "probes.json").write_text("{}")
    rows = [{"id": f"d{i}", "kl": k, "nll_tuned": 1 + k} for i, k in enumerate(kl)]
    (path / "drift.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def study_run(tmp_path):
    run = tmp_path / "run"
    _eval_dir(run / "eval/base", {"target": [0] * 20 + [1] * 20, "target@cot": [0] * 10, "held": [1] * 30})
    _eval_dir(run / "eval/lora", {"target": [1] * 20 + [1] * 20, "target@cot": [1] * 10, "held": [1] * 18 + [0] * 12})
    _probe_dir(run / "probes/base", [0.0] * 8)
    _probe_dir(run / "probes/lora", [0.5] * 8)
    (run / "study.json").write_text("{}")
    return run


def test_compare_results_pairs_every_suite_strategy_and_probe_metric(study_run):
    r = compare_results(f"{study_run}:base", f"{study_run}:lora", CFG)
    assert set(r["suites"]) == {"target", "target@cot", "held"}
    assert r["suites"]["target"]["diff"] == pytest.approx(0.5) and r["suites"]["held"]["diff"] == pytest.approx(-0.4)
    assert all(row["p_adj"] >= row["mcnemar_p"] and row["correction"] == "bh" for row in r["suites"].values())
    assert all(row["mde"] is not None for row in r["suites"].values())
    assert r["suites"]["held"]["n_to_certify"] is None  # a 40-point loss: no number of items would certify 5
    assert r["suites"]["target"]["n_to_certify"] > 0
    assert r["probes"]["drift"]["kl"]["diff"] == pytest.approx(0.5) and r["probes"]["drift"]["kl"]["n"] == 8
    assert r["method"]["n_bootstrap"] == 300 and "Benjamini-Hochberg" in r["method"]["multiple_comparisons"]


def test_results_dirs_names_what_is_wrong(study_run, tmp_path):
    assert results_dirs(str(study_run / "eval/lora")) == (study_run / "eval/lora", None)
    assert results_dirs(str(study_run / "probes/lora")) == (None, study_run / "probes/lora")
    with pytest.raises(DataError, match="name one as"):
        results_dirs(str(study_run))
    with pytest.raises(DataError, match="no model 'dora'.*base, lora"):
        results_dirs(f"{study_run}:dora")
    with pytest.raises(DataError, match="neither an eval dir"):
        results_dirs(str(tmp_path))
    with pytest.raises(DataError, match="share no eval suites and no probes"):
        compare_results(str(study_run / "eval/base"), str(study_run / "probes/lora"), CFG)


def test_compare_command_prints_and_writes_json(study_run, tmp_path):
    out = tmp_path / "cmp"
    result = CliRunner().invoke(app, ["compare", f"{study_run}:base", f"{study_run}:lora", "--out", str(out)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "target@cot" in result.output and "kl" in result.output and "Benjamini-Hochberg" in result.output
    saved = json.loads((out / "compare.json").read_text())
    assert saved["suites"]["held"]["ci95"][1] < 0
    again = CliRunner().invoke(app, ["compare", f"{study_run}:base", f"{study_run}:lora", "--out", str(out)])
    assert again.exit_code == 2 and "never overwrites" in again.output
    a_file = tmp_path / "file.json"
    a_file.write_text("{}")
    to_file = CliRunner().invoke(app, ["compare", f"{study_run}:base", f"{study_run}:lora", "--out", str(a_file)])
    assert to_file.exit_code == 2 and "not an empty directory" in to_file.output and a_file.read_text() == "{}"
    bad = CliRunner().invoke(app, ["compare", str(study_run), f"{study_run}:lora", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "name one as" in bad.output and not (tmp_path / "x").exists()


def test_sweep_point_uses_the_same_items_and_skips_floor_suites():
    def recs(suite, outcomes):
        return [{"id": f"{suite}-{i}", "correct": bool(c)} for i, c in enumerate(outcomes)]

    base = {"t": recs("t", [0, 0, 0, 0, 1, 1]), "h": recs("h", [1, 1, 1, 1, 0, 0]), "f": recs("f", [0] * 6)}
    other = {"t": recs("t", [1, 1, 0, 0, 0, 0]), "h": recs("h", [1, 0, 1, 1, 1, 1]), "f": recs("f", [1] * 6)}
    items = {n: [{"id": f"{n}-{i}"} for i in range(4)] for n in base}  # the first 4 items only
    roles, floors = {"t": "target", "h": "heldout", "f": "heldout"}, {"f": True}
    p = point(base, other, roles, floors, items, CFG)
    assert p["target_gain"] == pytest.approx(0.5) and p["heldout_change"] == pytest.approx(-0.25)
    assert set(p["suites"]) == {"t", "h"}  # the floor suite is not part of the held-out mean
    assert p["target_ci"][0] <= 0.5 <= p["target_ci"][1] and p["heldout_ci"][0] <= -0.25 <= p["heldout_ci"][1]
