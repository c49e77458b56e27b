"""A result is the same whatever the results store holds: evaluated with an empty store, with one half filled (a
killed run, or rows lost here and there) and with `--no-cache`, every reply and score is identical, in bf16 as in
float32 (batched arithmetic is not batch-invariant, so this holds only because the batches are a function of the
suite's items: eval.store.CachedBackend._cached)."""

import json
import sqlite3

import pytest
import yaml
from typer.testing import CliRunner

from driftlab.cli import app
from tests.conftest import tiny_study_config


def _eval(cfg_path, out, *extra) -> dict:
    result = CliRunner().invoke(app, ["eval", "-c", str(cfg_path), "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    replies = {}
    for path in sorted(out.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            replies[(path.stem, r["id"])] = (r["output"], r.get("loglik"), r.get("samples"))
    return replies


@pytest.mark.integration
@pytest.mark.parametrize("dtype,decoding", [("bfloat16", "dynamic"), ("float32", "dynamic"), ("bfloat16", "static")])
def test_results_do_not_depend_on_the_store(tmp_path, dtype, decoding):
    """On the embedded model (a random tiny model's replies do not flip with the last bits of its logits); static:
    the GPU's slot decoding (refilled slots), run here on the CPU."""
    cfg = tiny_study_config(tmp_path, "embedded")
    cfg["model"]["dtype"] = dtype
    cfg["eval"]["decoding"] = decoding
    cfg["data"]["target"].update(size=24, max_new_tokens=16)
    cfg["data"]["heldout"] = [{"name": "capitals", "source": "jsonl", "path": "capitals.jsonl", "mode": "loglik",
                               "size": 24}]
    cfg["eval"].update(batch_size=6, strategies=[{"name": "zero_shot"}, {"name": "self_consistency", "n": 2}])
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    store = tmp_path / "results.sqlite"

    empty = _eval(cfg_path, tmp_path / "empty")
    assert len(empty) == 24 * 2 + 24 and len({v[0] for v in empty.values()}) > 10
    assert _eval(cfg_path, tmp_path / "bare", "--no-cache") == empty
    with sqlite3.connect(store) as db:  # lose every other stored result: half the chunks are incomplete
        db.execute("DELETE FROM results WHERE rowid % 2 = 0")
    assert _eval(cfg_path, tmp_path / "half") == empty
    assert _eval(cfg_path, tmp_path / "full") == empty  # all from the store now
