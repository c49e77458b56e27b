import json

from driftlab.runs import new_run_dir, write_json


def test_run_dirs_are_never_reused(tmp_path):
    dirs = {new_run_dir(tmp_path, "s") for _ in range(3)}
    assert len(dirs) == 3 and all(d.is_dir() for d in dirs)


def test_atomic_write_leaves_no_temp_files(tmp_path):
    write_json(tmp_path / "a.json", {"x": 1})
    write_json(tmp_path / "a.json", {"x": 2})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_numpy_values_keep_their_json_type(tmp_path):
    import numpy as np

    write_json(tmp_path / "b.json", {"flag": np.bool_(True), "p": np.float64(0.5), "n": np.int64(3)})
    assert json.loads((tmp_path / "b.json").read_text()) == {"flag": True, "p": 0.5, "n": 3}
