"""Answer extraction: from a raw model output to the answer string that gets scored. Three modes (a suite's
`extraction`):

strict   (default) only an explicit answer format counts: the last `Answer: ...` (anywhere in a line, as lm-eval's
         `Answer:\\s*...` filters find it) or `\\boxed{...}`; a reply without one has no answer. (The eval also
         scores a reply cut by the token budget as wrong under strict: eval/run.py.)
lenient  the behaviour before strict existed: an `Answer:` at the start of a line, then `\\boxed{}`, then a fallback
         (the last number for numeric suites, the first line otherwise) — which scores numbers a model merely
         mentioned, even in a reply cut mid-sentence.
regex    a user pattern (lm-eval's regex filter habit): its first or last match, the first non-empty group if it
         has groups.
Thinking blocks (`<think>...</think>`) are removed first; an unclosed block means the model never got to answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ANSWER_LINE = re.compile(r"(?im)^\s*\**\s*(?:final\s+)?answer\s*\**\s*[:：]\s*(.+?)\s*$")
ANSWER_ANYWHERE = re.compile(r"(?im)(?<![a-z])(?:final\s+)?answer\s*\**\s*[:：]\s*(.+?)\s*$")
BOXED = re.compile(r"\\boxed\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}")
NUMBER = re.compile(r"(?<![\w.])[-−]?\$?\d[\d,]*(?:\.\d+)?")


@dataclass
class Extraction:
    answer: str | None
    method: str  # answer_line | boxed | last_number | first_line | whole_reply | none | truncated_thinking
    format_ok: bool  # the output used an explicit answer format (Answer: line or \boxed{})


def split_thinking(text: str) -> tuple[str, str, bool]:
    """(thinking, visible answer text, thinking_was_truncated). Qwen3-style `<think>...</think>` blocks; an unclosed
    block means generation stopped mid-thought, so there is no answer at all (never score the chain as one)."""
    if "</think>" in text and "<think>" not in text:
        # Templates that open the block in the prompt (Qwen3 with thinking on) leave only the closing tag.
        before, _, after = text.rpartition("</think>")
        return before.strip(), after.strip(), False
    thinking = "".join(re.findall(r"(?s)<think>(.*?)</think>", text))
    if "<think>" in text and "</think>" not in text.split("<think>")[-1]:
        return thinking + text.split("<think>")[-1], "", True
    return thinking.strip(), re.sub(r"(?s)<think>.*?</think>", "", text).strip(), False


def strip_thinking(text: str) -> tuple[str, bool]:
    """(visible text, thinking_was_truncated)."""
    _, visible, truncated = split_thinking(text)
    return visible, truncated


def extract_for(text: str, suite) -> Extraction:
    """Extract as a suite's config says (scorer, extraction mode, pattern, first/last match)."""
    return extract_answer(text, suite.scorer, suite.extraction, suite.pattern, suite.match)


def extract_answer(text: str, kind: str = "numeric", mode: str = "lenient", pattern: str | None = None,
                   match: str = "last") -> Extraction:
    """`kind`: the suite's scorer (how to clean the answer); `mode`: strict | lenient | regex (module doc)."""
    visible, truncated = strip_thinking(text)
    if truncated:
        return Extraction(None, "truncated_thinking", False)
    if kind == "strict":  # instruction-following checks: the reply itself is the answer, no extraction
        reply = visible.strip()
        # Format for a strict check: a one-line reply with no "Answer:" wrapper around it.
        fmt = bool(reply) and "\n" not in reply and not ANSWER_LINE.search(reply)
        return Extraction(reply or None, "whole_reply" if reply else "none", fmt)
    if mode == "regex":
        found = re.findall(pattern or "", visible)
        if not found:
            return Extraction(None, "none", False)
        pick = found[0] if match == "first" else found[-1]
        if isinstance(pick, tuple):  # several groups: the first that matched
            pick = next((g for g in pick if g), "")
        return Extraction(_clean(pick, kind), "regex", True)
    if mode == "strict":
        return _strict(visible, kind)
    lines = ANSWER_LINE.findall(visible)
    if lines:
        return Extraction(_clean(lines[-1], kind), "answer_line", True)
    boxed = BOXED.findall(visible)
    if boxed:
        return Extraction(_clean(boxed[-1], kind), "boxed", True)
    if kind in ("numeric", "math"):
        numbers = NUMBER.findall(visible)
        if numbers:
            last = normalize_number(numbers[-1])
            return Extraction(last, "last_number", False)
        return Extraction(None, "none", False)
    first = next((ln.strip() for ln in visible.splitlines() if ln.strip()), "")
    return Extraction(first or None, "first_line" if first else "none", False)


def _strict(visible: str, kind: str) -> Extraction:
    """The last `Answer:` that opens a line, else the last one inside a line (so a later mention in prose does not
    override an answer line), else the last \\boxed{}; a candidate that cleans to nothing ("Answer: (see below)")
    gives way to the next kind of evidence."""
    for pattern, method in ((ANSWER_LINE, "answer_line"), (ANSWER_ANYWHERE, "answer_line"), (BOXED, "boxed")):
        found = pattern.findall(visible)
        if found:
            answer = _clean(found[-1], kind)
            # A numeric answer must open its value (after a last '='): "Answer: first compute 12 + 34" is no 12.
            if kind == "numeric" and not re.match(r"\s*\**\s*[-−]?\$?\d", found[-1].rsplit("=", 1)[-1]):
                answer = None
            if answer is not None:
                return Extraction(answer, method, True)
    return Extraction(None, "none", False)


def normalize_number(text: str) -> str | None:
    """'$1,234.50' -> '1234.5', '−7' -> '-7', '57.' -> '57'; None when there is no number."""
    match = NUMBER.search(text.replace("−", "-"))
    if not match:
        return None
    raw = match.group(0).replace("$", "").replace(",", "").replace("−", "-")
    if "." in raw:
        raw = raw.rstrip("0").rstrip(".")
    return "0" if raw in ("-0", "") else raw


def _clean(text: str, kind: str) -> str | None:
    if kind == "math":
        return text.strip().rstrip(".").strip() or None
    text = text.strip().strip("*").strip()
    if kind == "numeric":
        # "Answer: 12 + 34 = 46" states the result after the last '='.
        return normalize_number(text.rsplit("=", 1)[-1])
    return text.rstrip(".").strip() or None
