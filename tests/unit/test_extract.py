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


def test_strict_extraction_counts_only_an_explicit_answer():
    # What lenient scored: a number the model merely mentioned, in a reply without the requested format.
    assert extract_answer("38 + 29 = 67", "numeric", "lenient").answer == "67"
    strict = extract_answer("38 + 29 = 67", "numeric", "strict")
    assert strict.answer is None and not strict.format_ok
    assert extract_answer("The sum is 67. Answer: 67", "numeric", "strict").answer == "67"  # anywhere in a line
    assert extract_answer("It is 3.\n**Answer:** 12", "numeric", "strict").answer == "12"
    assert extract_answer("so \\boxed{7}", "numeric", "strict").answer == "7"
    assert extract_answer("Reply with 'Answer: <number>'.", "numeric", "strict").answer is None  # echoed prompt
    assert extract_answer("Final answer: Paris.", "exact", "strict").answer == "Paris"
    assert extract_answer("Paris", "exact", "strict").answer is None  # lenient would take the first line


def test_regex_extraction_first_or_last_match_and_groups():
    text = "x = 5, then y = 9"
    assert extract_answer(text, "numeric", "regex", r"= (\d+)", "first").answer == "5"
    assert extract_answer(text, "numeric", "regex", r"= (\d+)", "last").answer == "9"
    assert extract_answer("#### 42", "numeric", "regex", r"#### (\-?[0-9\.\,]+)|Answer: (\d+)").answer == "42"
    assert extract_answer("nothing", "numeric", "regex", r"= (\d+)").answer is None


def test_strict_scores_a_reply_cut_by_the_token_budget_as_wrong():
    from driftlab.config import EvalConfig, SuiteConfig
    from driftlab.eval.backend import Generation
    from driftlab.eval.run import evaluate_suite

    class Cut:
        def chat(self, prompt):
            return prompt

        def generate(self, prompts, max_new_tokens, stop=None, shared_prefix=""):
            return [Generation("Answer: 7, because 3 + 4 is", 8, "length", 0.0) for _ in prompts]

    items = [{"id": "a-0", "suite": "a", "prompt": "3 + 4?", "answer": "7"}]
    for mode, correct in (("strict", False), ("lenient", True)):
        suite = SuiteConfig(name="a", source="jsonl", path="x", scorer="numeric", extraction=mode)
        records, _ = evaluate_suite(Cut(), items, suite, EvalConfig())
        assert records[0]["correct"] is correct, mode
        assert ("cut by the token budget" in records[0]["reason"]) is (mode == "strict")



def test_extraction_config_is_checked():
    import pytest

    from driftlab.config import SuiteConfig

    with pytest.raises(ValueError, match="needs 'pattern'"):
        SuiteConfig(name="a", source="jsonl", path="x", extraction="regex")
    with pytest.raises(ValueError, match="not a regular expression"):
        SuiteConfig(name="a", source="jsonl", path="x", extraction="regex", pattern="(")
    assert SuiteConfig(name="a", source="jsonl", path="x").extraction == "strict"


def test_regex_mode_agrees_with_lm_evals_regex_filter(tiny_model_dir):
    """driftlab's `regex` extraction and lm-eval's RegexFilter + exact match score the same replies the same way:
    the tiny model's own replies plus hand-made ones (lm-eval is part of the test extra)."""
    from lm_eval.filters.extraction import RegexFilter

    from driftlab.config import SuiteConfig
    from driftlab.eval.extract import extract_for
    from driftlab.eval.hf_backend import HFBackend
    from driftlab.eval.scoring import score
    from driftlab.models import ResolvedModel, load_model

    model, tok = load_model(ResolvedModel("tiny", str(tiny_model_dir), "x"), "float32")
    prompts = [f"What is {a} + {b}? Reply with only the final line 'Answer: <number>'." for a, b in
               [(12, 34), (57, 19), (40, 2), (3, 3)]]
    replies = [g.text for g in HFBackend(model, tok, batch_size=4).generate(prompts, 12)]
    replies += ["Answer: 46", "It is 46.\nAnswer: 46", "Answer: 45\nAnswer: 46", "answer: 46", "**Answer:** 46",
                "Answer:46 and more", "Answer: -7", "46", "Answer: 46.0", "Answer: 12 + 34 = 46"]
    golds = ["46", "76", "42", "6"] + ["46"] * 6 + ["-7", "46", "46", "46"]
    pattern = r"Answer:\s*(-?\d+)"
    theirs = [r[0].strip() == g for r, g in zip(RegexFilter(regex_pattern=pattern, group_select=0).apply(
        [[t] for t in replies], [{}] * len(replies)), golds)]
    suite = SuiteConfig(name="s", source="jsonl", path="x", scorer="exact", extraction="regex", pattern=pattern,
                        match="first")
    ours = [bool(score(extract_for(t, suite).answer, g, "exact")[0]) for t, g in zip(replies, golds)]
    assert ours == theirs, list(zip(replies, golds, ours, theirs))
    assert sum(theirs) >= 5  # the hand-made replies exercise both outcomes


def test_strict_prefers_answer_lines_and_needs_a_value_that_opens_with_the_number():
    assert extract_answer("Answer: 5\nthe question's answer: 6 was a trap", "numeric", "strict").answer == "5"
    assert extract_answer("The answer: first compute 12 + 34.", "numeric", "strict").answer is None
    assert extract_answer("Answer: (see below)\n\\boxed{5}", "numeric", "strict").answer == "5"
    assert extract_answer("Answer: 12 + 34 = 46", "numeric", "strict").answer == "46"


def test_extraction_options_that_would_be_ignored_are_errors():
    import pytest

    from driftlab.config import SuiteConfig

    with pytest.raises(ValueError, match="applies to extraction 'regex' only"):
        SuiteConfig(name="a", source="jsonl", path="x", match="first")
    with pytest.raises(ValueError, match="scores the whole reply"):
        SuiteConfig(name="a", source="jsonl", path="x", scorer="strict", extraction="lenient")
