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
