import pytest

from driftlab.eval.extract import extract_answer, normalize_number, strip_thinking
from driftlab.eval.scoring import score


@pytest.mark.parametrize("text,answer,method,fmt", [
    ("Answer: 57", "57", "answer_line", True),
    ("Let me think. 12 + 45 = 57\nAnswer: 57", "57", "answer_line", True),
    ("answer: -12.", "-12", "answer_line", True),
    ("**Answer:** $1,234.50", "1234.5", "answer_line", True),
    ("Final answer: 3\nAnswer: 4", "4", "answer_line", True),
    ("Answer: 12 + 34 = 46", "46", "answer_line", True),
    ("so the result is \\boxed{42}.", "42", "boxed", True),
    ("38 - 29 = 9", "9", "last_number", False),
    ("I don't know", None, "none", False),
    ("<think>7 + 8 is 15</think>Answer: 15", "15", "answer_line", True),
    ("<think>7 + 8 is 15, so", None, "truncated_thinking", False),
])
def test_extract_numeric(text, answer, method, fmt):
    ex = extract_answer(text, "numeric")
    assert (ex.answer, ex.method, ex.format_ok) == (answer, method, fmt)


def test_extract_text_first_line_and_answer_line():
    assert extract_answer("apple\nmore text", "exact").answer == "apple"
    assert extract_answer("Sure!\nAnswer: Paris.", "exact").answer == "Paris"


def test_thinking_removed_before_extraction():
    assert strip_thinking("<think>Answer: 1</think>\nAnswer: 2") == ("Answer: 2", False)


@pytest.mark.parametrize("raw,norm", [("1,000", "1000"), ("57.0", "57"), ("−7", "-7"), ("$29.00", "29"), ("x", None)])
def test_normalize_number(raw, norm):
    assert normalize_number(raw) == norm


def test_score_numeric_and_exact():
    assert score("57", "57", "numeric") == (True, "numeric match")
    assert score("57.0", "57", "numeric")[0]
    assert not score("56", "57", "numeric")[0]
    assert score(None, "57", "numeric") == (False, "no answer extracted")
    assert score("'Apple'.", "apple", "exact")[0]
    assert not score("apples", "apple", "exact")[0]


def test_strict_takes_the_whole_reply():
    assert extract_answer("Answer: apple", "strict").answer == "Answer: apple"
    assert not extract_answer("Answer: apple", "strict").format_ok and extract_answer("apple", "strict").format_ok
    assert not score(extract_answer("Answer: apple", "strict").answer, "apple", "strict")[0]
    assert score(extract_answer(" Apple.\n", "strict").answer, "apple", "strict")[0]


def test_split_thinking():
    from driftlab.eval.extract import split_thinking

    assert split_thinking("<think>a+b</think>\nAnswer: 3") == ("a+b", "Answer: 3", False)
    thinking, visible, truncated = split_thinking("<think>long chain, still going")
    assert (visible, truncated) == ("", True) and thinking.startswith("long chain")
    assert split_thinking("plain") == ("", "plain", False)


def test_math_scorer_uses_math_verify():
    assert extract_answer("so \\boxed{1/2}", "math").answer == "1/2"
    assert score(extract_answer("so \\boxed{1/2}", "math").answer, "0.5", "math")[0]
    assert score("1/2", "0.5", "math")[0]
    assert score(extract_answer("so \\boxed{\\frac{1}{2}}", "math").answer, "0.5", "math")[0]
    assert not score("0.4", "0.5", "math")[0]


@pytest.mark.parametrize("reply,ok", [("B", True), ("(b)", True), ("B) Paris", True), ("Paris", True),
                                      ("A", False), ("B) Rome", False), ("Z", False)])
def test_choice_scorer(reply, ok):
    choices = ["Rome", "Paris", "Oslo"]
    assert score(extract_answer(f"Answer: {reply}", "choice").answer, "Paris", "choice", choices)[0] is ok


def test_thinking_opened_by_the_template_only_closes_in_the_reply():
    from driftlab.eval.extract import split_thinking

    assert split_thinking("so 12 + 87 = 99</think>\nAnswer: 98") == ("so 12 + 87 = 99", "Answer: 98", False)
    assert extract_answer("12 + 87 = 99</think>\n", "numeric").answer is None
