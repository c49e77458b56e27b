"""Raw item sources: reasoning-gym generators and user JSONL files.

A raw item is `{"question": str, "answer": str, "choices": list[str] | None, "meta": dict}`.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

from driftlab.errors import DataError


def reasoning_gym_items(task: str, kwargs: dict, size: int, seed: int, key: str) -> list[dict]:
    """`size` items from a reasoning-gym generator; `key` names the config key in errors."""
    import reasoning_gym
    from reasoning_gym.factory import DATASETS

    if task not in DATASETS:
        close = difflib.get_close_matches(task, DATASETS.keys(), n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else " See reasoning_gym.factory.DATASETS."
        raise DataError(f"config key '{key}': unknown reasoning-gym task '{task}'.{hint}")
    try:
        dataset = reasoning_gym.create_dataset(task, size=size, seed=seed, **kwargs)
    except (TypeError, ValueError, AssertionError) as err:
        raise DataError(f"config key '{key}': reasoning-gym task '{task}' rejected its kwargs {kwargs}: {err}") from None
    items = []
    for entry in dataset:
        if entry.get("answer") is None:  # some generators have no single gold answer; we cannot score those
            continue
        meta = {k: v for k, v in entry.get("metadata", {}).items() if _jsonable(v)}
        items.append({"question": entry["question"], "answer": str(entry["answer"]), "choices": None, "meta": meta})
    if not items:
        raise DataError(f"config key '{key}': reasoning-gym task '{task}' produced no items with a gold answer")
    return items


def jsonl_items(path: Path, on_bad_row: str = "error") -> tuple[list[dict], int]:
    """Rows of a user JSONL file and how many malformed rows were skipped (on_bad_row='skip')."""
    path = _existing_file(path)
    return _collect(path, _jsonl_rows(path), on_bad_row)


def prompt_items(path: Path) -> list[dict]:
    """Prompts without gold answers (JSONL rows with a non-empty 'question'): self-replay and drift prompts."""
    path = _existing_file(path)
    return _collect(path, _jsonl_rows(path, parse_row=_parse_prompt_row), "error")[0]


GENERAL_PROMPTS = Path(__file__).resolve().parents[1] / "suites" / "general_prompts.jsonl"
DRIFT_RESERVE = 50  # the bundled file's last 50 prompts: drift probe only, never replayed, so never trained on


def replay_prompts(path: Path | None = None) -> list[dict]:
    """Self-replay prompts: a user's file, or the bundled general prompts minus the drift probe's reserve."""
    return prompt_items(path) if path else prompt_items(GENERAL_PROMPTS)[:-DRIFT_RESERVE]


def drift_prompts(n: int) -> list[dict]:
    """The drift probe's prompts: from the bundled file's reserved tail, disjoint from any self-replay data."""
    return prompt_items(GENERAL_PROMPTS)[-DRIFT_RESERVE:][:n]


def csv_items(path: Path, on_bad_row: str = "error") -> tuple[list[dict], int]:
    """Rows of a user CSV file with a header (question, answer, optional choices as 'a|b|c', other columns kept as
    meta); same validation and error style as JSONL, lines counted as the file's physical lines."""
    path = _existing_file(path)
    return _collect(path, _csv_rows(path), on_bad_row)


def _collect(path: Path, rows, on_bad_row: str) -> tuple[list[dict], int]:
    """One policy for every file format: rows yields (line number, parse); a parse that raises ValueError is a
    malformed row — an error naming file:line, or skipped and counted."""
    items, skipped = [], 0
    for lineno, parse in rows:
        try:
            items.append(parse())
        except ValueError as err:
            if on_bad_row == "skip":
                skipped += 1
                continue
            raise DataError(f"{path}:{lineno}: {err}") from None
    if not items:
        raise DataError(f"{path}: no usable rows ({skipped} malformed rows skipped)")
    return items, skipped


# One item's text is at most this long (characters in a field; bytes in a JSONL line): far beyond any model's context
# (100,000 characters is about 25,000 tokens; the embedded model reads 8,192), so a longer one is a broken file, not
# an item — and it would otherwise be copied into every record the item produces.
MAX_FIELD_CHARS = 100_000
MAX_LINE_BYTES = 1_000_000


def _jsonl_rows(path: Path, parse_row=None):
    parse_row = parse_row or _parse_row
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if len(raw) > MAX_LINE_BYTES:
                yield lineno, _fail(f"line of {len(raw):,} bytes; the limit is {MAX_LINE_BYTES:,}")
                continue
            try:  # a byte-order mark opens files that Windows editors save (utf-8-sig drops it); CRLF is JSON whitespace
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError:
                yield lineno, _fail("not valid UTF-8")
                continue
            if line.strip():
                yield lineno, (lambda line=line: parse_row(line))


def _csv_rows(path: Path):
    import csv

    limit = csv.field_size_limit(MAX_FIELD_CHARS)  # process-wide: put back when done
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:  # a BOM is not part of the first column's name
            reader = csv.DictReader(f)
            missing = {"question", "answer"} - set(reader.fieldnames or [])
            if missing:
                raise DataError(f"{path}:1: header lacks column(s) {sorted(missing)}")
            for row in reader:
                yield reader.line_num, (lambda row=row: _parse_csv_row(row))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not valid UTF-8") from None
    except csv.Error as err:  # e.g. a field over the limit set above; line_num counts the lines read before it
        raise DataError(f"{path}:{reader.line_num + 1}: {err}") from None
    finally:
        csv.field_size_limit(limit)


def _parse_csv_row(row: dict) -> dict:
    if None in row or any(v is None for v in row.values()):
        raise ValueError("wrong number of fields")
    if row.get("choices"):
        row["choices"] = row["choices"].split("|")
    else:
        row.pop("choices", None)
    return _validate(row)


def _fail(message: str):
    def parse():
        raise ValueError(message)

    return parse


def _existing_file(path: Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found" if not path.exists() else f"{path}: not a file")
    return path


def _parse_row(line: str) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON ({err.msg} at column {err.colno})") from None
    return _validate(row)


def _parse_prompt_row(line: str) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(row, dict) or not isinstance(row.get("question"), str) or not row["question"].strip():
        raise ValueError("expected a JSON object with a non-empty 'question'")
    _check_length("question", row["question"])
    return {"question": row["question"]}


def _validate(row) -> dict:
    if not isinstance(row, dict):
        raise ValueError("expected a JSON object with 'question' and 'answer'")
    for field in ("question", "answer"):
        if field not in row:
            raise ValueError(f"missing field '{field}'")
    question, answer = row["question"], row["answer"]
    if not isinstance(question, str) or not question.strip():
        raise ValueError("'question' must be a non-empty string")
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)) or str(answer).strip() == "":
        raise ValueError("'answer' must be a non-empty string or a number")
    choices = row.get("choices")
    if choices is not None:
        if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c.strip()
                                                                          for c in choices):
            raise ValueError("'choices' must be a list of at least two non-empty strings")
        if str(answer) not in choices:
            raise ValueError(f"'answer' {answer!r} is not one of 'choices'")
    _check_length("question", question)
    _check_length("answer", str(answer))
    for c in choices or []:
        _check_length("a choice", c)
    meta = {k: v for k, v in row.items() if k not in ("question", "answer", "choices")}
    return {"question": question, "answer": str(answer), "choices": choices, "meta": meta}


def _check_length(field: str, text: str) -> None:
    if len(text) > MAX_FIELD_CHARS:
        raise ValueError(f"{field} of {len(text):,} characters; the limit for one field is {MAX_FIELD_CHARS:,}")


def _jsonable(value) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False
