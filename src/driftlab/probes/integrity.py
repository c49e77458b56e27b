"""Chain integrity: are a chain's arithmetic steps true, where does the first false one sit, and does the answer
follow the chain past it?

A step is any `expression = number` a chain writes with at least one operator (`45 + 67 = 112`, `8 - 1 - 4 = 3`,
`3 x 4 = 12`), evaluated with the usual precedence. Per chain:

false_step          at least one step is false (None: the chain writes no step it can check)
first_false_at      where the first false step starts, as a share of the chain's length (0 = at its start)
follows_false_step  for a chain with a false step: the final answer is the chain's last computed result, i.e. the
                    model carried its own error into the answer (True) or answered something else — often the right
                    answer, ignoring what it wrote (False)
"""

from __future__ import annotations

import re

NUMBER = r"-?\d+(?:\.\d+)?"
EXPRESSION_STEP = re.compile(rf"(?<![\d.])((?:{NUMBER}\s*[-+*/x×]\s*)+{NUMBER})\s*=\s*({NUMBER})(?!\d|\.\d)")


UNCHECKED = {"steps": 0, "false_step": None, "first_false_at": None, "follows_false_step": None}


def check_chain(chain: str, answer: str | None) -> dict:
    chain = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", chain)  # 1,234 is one number, not "1, 234"
    steps = [(m, _value(m.group(1))) for m in EXPRESSION_STEP.finditer(chain)]
    steps = [(m, v) for m, v in steps if v is not None]
    if not steps:
        return dict(UNCHECKED)
    false = [m for m, v in steps if abs(v - float(m.group(2))) > 1e-9]
    out = {"steps": len(steps), "false_step": bool(false), "first_false_at": None, "follows_false_step": None}
    if false:
        out["first_false_at"] = false[0].start() / max(1, len(chain))
        last = float(steps[-1][0].group(2))
        out["follows_false_step"] = answer is not None and _number(answer) == last
    return out


def _value(expression: str) -> float | None:
    """The expression's value (numbers and + - * / only, so eval sees nothing else); None when it has none."""
    text = re.sub(r"\s*[x×]\s*", " * ", expression)
    if not re.fullmatch(r"[-+*/.\d\s]+", text):
        return None
    try:
        return float(eval(text, {"__builtins__": {}}, {}))  # noqa: S307 - digits, dots, spaces and + - * / only
    except (ZeroDivisionError, SyntaxError, OverflowError, ValueError):  # ValueError: ints of > 4,300 digits
        return None


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None
