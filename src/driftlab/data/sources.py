"""Raw item sources: reasoning-gym generators and user files (JSONL, CSV, Parquet).

A raw item is `{"question": str, "answer": str, "choices": list[str] | None, "meta": dict}`.
"""

from __future__ import annotations

import difflib
import json
import math
import re
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


def file_items(path: Path, source: str, on_bad_row: str = "error", fields: dict[str, str] | None = None
               ) -> tuple[list[dict], int]:
    """A user file's rows by its format: Parquet when `source` is 'parquet' or the name ends in .parquet (a binary
    format that can be nothing else), CSV for 'csv', else JSONL."""
    if source == "parquet" or Path(path).suffix.lower() == ".parquet":
        return parquet_items(path, on_bad_row, fields)
    return (csv_items if source == "csv" else jsonl_items)(path, on_bad_row, fields)


def jsonl_items(path: Path, on_bad_row: str = "error", fields: dict[str, str] | None = None
                ) -> tuple[list[dict], int]:
    """Rows of a user JSONL file and how many malformed rows were skipped (on_bad_row='skip'). A row is
    {question, answer}, TRL's {prompt, completion} or {messages} (below), or any columns named by `fields`."""
    path = _existing_file(path)
    return _collect(path, _jsonl_rows(path, parse_row=lambda line: _parse_row(line, fields)), on_bad_row)


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


def csv_items(path: Path, on_bad_row: str = "error", fields: dict[str, str] | None = None
              ) -> tuple[list[dict], int]:
    """Rows of a user CSV file with a header (question, answer, optional choices as 'a|b|c', other columns kept as
    meta; other column names through `fields`); same validation and error style as JSONL, lines counted as the
    file's physical lines."""
    path = _existing_file(path)
    return _collect(path, _csv_rows(path, fields or {}), on_bad_row)


def parquet_items(path: Path, on_bad_row: str = "error", fields: dict[str, str] | None = None
                  ) -> tuple[list[dict], int]:
    """Rows of a user Parquet file, read as JSONL rows are ({question, answer}, TRL's {prompt, completion} or
    {messages}, other column names through `fields`); a null cell is a missing field, and errors name the row,
    counted from 1 in file order."""
    path = _existing_file(path)
    return _collect(path, _parquet_rows(path, fields or {}), on_bad_row, unit="row")


def _collect(path: Path, rows, on_bad_row: str, unit: str = "line") -> tuple[list[dict], int]:
    """One policy for every file format: rows yields (line or row number, parse); a parse that raises ValueError is
    a malformed row — an error naming file:line (file: row N for a Parquet file), or skipped and counted."""
    items, skipped = [], 0
    for number, parse in rows:
        try:
            items.append(parse())
        except ValueError as err:
            if on_bad_row == "skip":
                skipped += 1
                continue
            where = f"{path}:{number}" if unit == "line" else f"{path}: {unit} {number}"
            raise DataError(f"{where}: {err}") from None
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


def _csv_rows(path: Path, fields: dict[str, str]):
    import csv

    limit = csv.field_size_limit(MAX_FIELD_CHARS)  # process-wide: put back when done
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:  # a BOM is not part of the first column's name
            reader = csv.DictReader(f)
            needed = {fields.get(k, k) for k in ("question", "answer")}
            missing = needed - set(reader.fieldnames or [])
            if missing:
                raise DataError(f"{path}:1: header lacks column(s) {sorted(missing)}"
                                + ("" if fields else " (data.*.fields maps other column names)"))
            for row in reader:
                yield reader.line_num, (lambda row=row: _parse_csv_row(_renamed(row, fields)))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not valid UTF-8") from None
    except csv.Error as err:  # e.g. a field over the limit set above; line_num counts the lines read before it
        raise DataError(f"{path}:{reader.line_num + 1}: {err}") from None
    finally:
        csv.field_size_limit(limit)


def _parquet_rows(path: Path, fields: dict[str, str]):
    # pyarrow directly, not datasets.load_dataset("parquet", data_files=..., split="train"): for a local file that
    # loader reads with the same pyarrow, but first copies the whole file into an Arrow cache under
    # ~/.cache/huggingface/datasets (a second copy of the user's data, kept after the run) behind a progress bar;
    # reading row groups in batches streams the file instead. pyarrow comes with datasets (a dependency).
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{path}: not a readable Parquet file ({err})") from None
    columns = set(parquet.schema_arrow.names)
    needed = {fields.get(k, k) for k in ("question", "answer")}
    if not needed <= columns and not {"prompt", "messages"} & columns:
        raise DataError(f"{path}: no column(s) {sorted(needed - columns)} (nor TRL's 'prompt'/'completion' or "
                        "'messages')" + ("" if fields else "; data.*.fields maps other column names"))
    number = 0
    try:
        for batch in parquet.iter_batches(batch_size=1024):
            for row in batch.to_pylist():
                number += 1
                yield number, (lambda row=row: _parse_parquet_row(row, fields))
    except pa.ArrowException as err:  # a damaged row group: the rows before it were read
        raise DataError(f"{path}: rows from row {number + 1} on: unreadable ({err})") from None


def _parse_parquet_row(row: dict, fields: dict[str, str]) -> dict:
    # A null cell (or a float NaN, pandas' missing value) is an absent field: a column this row does not use. Dates,
    # bytes and decimals of extra columns become text, as they would be in a JSONL file, so meta stays JSON.
    present = {k: v for k, v in row.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}
    return _parse_record(json.loads(json.dumps(present, default=str)), fields)


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


def _parse_row(line: str, fields: dict[str, str] | None = None) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON ({err.msg} at column {err.colno})") from None
    return _parse_record(row, fields)


def _parse_record(row, fields: dict[str, str] | None = None) -> dict:
    """One decoded row (a JSONL line, a Parquet row): renamed by `fields`, TRL formats read, validated."""
    if isinstance(row, dict) and fields:
        row = _renamed(row, fields)
    if isinstance(row, dict) and "question" not in row and ("messages" in row or "prompt" in row):
        row = _from_trl(row)
    return _validate(row)


def _renamed(row: dict, fields: dict[str, str]) -> dict:
    """`fields` maps driftlab's names to the file's: {question: problem, answer: solution}."""
    out = {k: v for k, v in row.items() if k not in fields.values()}
    for ours, theirs in fields.items():
        if theirs in row:
            out[ours] = row[theirs]
    return out


ANSWER_LINE = re.compile(r"^[\s*#]*(?:final\s+)?answer[\s*]*[:：][\s*]*(.+?)[\s*.]*$", re.I | re.M)
TRL_COMPLETION = "__trl_completion__"  # a TRL row's completion on its way to _validate (not a file field)


def _from_trl(row: dict) -> dict:
    """TRL's dataset formats, single-turn: {"prompt": ..., "completion": ...} (strings, or lists of chat messages)
    and {"messages": [optional system, user, assistant]}. The question is the user message (a system message is
    dropped), the completion is what a fine-tune is trained to write (kept whole), and the gold answer is an
    "answer" field when the row has one, else the completion's last 'Answer: ...' line or \\boxed{...}, else a
    one-line completion itself; a longer completion without one is a row error (give the row an 'answer')."""
    def text(value, role: str) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, list) and all(isinstance(m, dict) for m in value):
            said = [m.get("content") for m in value if m.get("role") == role]
            if len(said) > 1:
                raise ValueError(f"{len(said)} '{role}' messages: only single-turn rows are read (one question, "
                                 "one reply)")
            if said and isinstance(said[0], str):
                return said[0]
        raise ValueError(f"expected a string or a list of chat messages with one '{role}' message")

    if "messages" in row:
        messages = row["messages"]
        if not isinstance(messages, list) or len(messages) < 2 or not isinstance(messages[-1], dict) or \
                messages[-1].get("role") != "assistant":
            raise ValueError("'messages' must be a list of chat messages ending with the assistant's")
        question, completion = text(messages[:-1], "user"), text(messages[-1:], "assistant")
    else:
        if "completion" not in row:
            raise ValueError("a TRL prompt row needs 'completion' (or use 'question'/'answer')")
        question, completion = text(row["prompt"], "user"), text(row["completion"], "assistant")
    answer = row.get("answer")
    if answer is None:
        found = ANSWER_LINE.findall(completion) or _boxed(completion)
        if found:
            answer = found[-1].strip()
        elif "\n" not in completion.strip():
            answer = completion.strip()
        else:
            raise ValueError("no 'Answer: ...' line or \\boxed{...} in the completion to take the gold answer from; "
                             "give the row an 'answer'")
    rest = {k: v for k, v in row.items() if k not in ("messages", "prompt", "completion", "answer")}
    return {**rest, "question": question, "answer": answer, TRL_COMPLETION: completion}


def _boxed(text: str) -> list[str]:
    """Every \\boxed{...}'s content, nested braces included (\\boxed{\\frac{1}{2}})."""
    out, start = [], 0
    while (i := text.find("\\boxed{", start)) >= 0:
        depth, j = 0, i + len("\\boxed")
        for j in range(j, len(text)):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                out.append(text[i + len("\\boxed{"): j])
                break
        start = j + 1
    return out


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
    meta = {k: v for k, v in row.items() if k not in ("question", "answer", "choices", TRL_COMPLETION)}
    item = {"question": question, "answer": str(answer), "choices": choices, "meta": meta}
    if row.get(TRL_COMPLETION, "").strip():  # a TRL row: what the fine-tune is trained to write, as written
        _check_length("completion", row[TRL_COMPLETION])
        item["completion"] = row[TRL_COMPLETION]
    return item


def _check_length(field: str, text: str) -> None:
    if len(text) > MAX_FIELD_CHARS:
        raise ValueError(f"{field} of {len(text):,} characters; the limit for one field is {MAX_FIELD_CHARS:,}")


def _jsonable(value) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False
