"""Run directories and atomic writes.

Every run gets a fresh directory and nothing is ever overwritten in place: files are written to a temp file in the
same directory and renamed, so a killed process leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable


def world_size() -> int:
    """Processes in this launch (`accelerate launch` / torchrun set WORLD_SIZE); 1 for a plain run."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Rank 0 writes the run dir's files; the other ranks of a distributed launch only train."""
    return os.environ.get("RANK", "0") == "0"


LIBRARY_LOG = "driftlab.libraries"  # where cli.quiet_libraries sends the libraries' warnings


def run_log(run_dir: Path) -> None:
    """From now on, the libraries' warnings (cli.quiet_libraries) go to `run_dir/log.txt`, created at the first one,
    with those held back since the command began; the previous run's file, if any, is closed. Nothing reaches the
    terminal through this logger."""
    import logging
    import logging.handlers

    logger = logging.getLogger(LIBRARY_LOG)
    logger.propagate = False
    handler = logging.FileHandler(Path(run_dir) / "log.txt", delay=True, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    for h in list(logger.handlers):
        logger.removeHandler(h)
        if isinstance(h, logging.handlers.MemoryHandler):  # what came before the run dir existed
            h.setTarget(handler)
            h.flush()
        h.close()
    logger.addHandler(handler)


def new_run_dir(runs_dir: Path, name: str) -> Path:
    """Create `runs_dir/<UTC timestamp>-<name>/`; never reuses an existing directory."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for i in range(1000):
        path = runs_dir / (f"{stamp}-{name}" if i == 0 else f"{stamp}-{name}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a fresh run directory under {runs_dir}")


def require_empty_dir(path: Path, what: str) -> None:
    """A user-named output dir may be new or empty, never a file or a dir with anything in it."""
    from driftlab.errors import DriftlabError

    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise DriftlabError(f"{what} {path}: exists and is not an empty directory; driftlab never overwrites a run")


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; results are meant to be shared
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(final: Path, replace: bool = False):
    """Yields a fresh temp dir beside `final` to write into; on success it is renamed to `final` (readers never see
    half a directory), on failure removed. Its name is new (mkdtemp), so nothing of anyone else's is touched; an
    existing `final` is replaced only when `replace` (driftlab's own output), else the rename fails."""
    import shutil

    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700; a model or a run is meant to be shared
        yield tmp
        if replace and final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _json_default(value: Any) -> Any:
    """numpy scalars become their Python value (a numpy bool must not turn into the string "False"), paths become
    strings; anything else is a bug and raises."""
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, default=_json_default) + "\n" for r in rows))


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSONL file we wrote; a torn *last* line (a log cut by a kill) is skipped, anything else raises."""
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f if line.strip()]
    rows = []
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i != len(lines) - 1:
                raise
    return rows


def dir_size(path: Path) -> int:
    """Bytes of the files under `path` (what a run directory holds on disk, links not followed)."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file() and not p.is_symlink())
