"""Gold chains: every step true, the last line the item's answer, one writer per family, a clear error otherwise."""

import re

import pytest

from driftlab.data.chains import CHAIN_WRITERS, gold_chain, parse_expression
from driftlab.data.sources import reasoning_gym_items
from driftlab.errors import DataError
from driftlab.probes.faithfulness import STEP


def _steps_hold(chain: str) -> int:
    steps = STEP.findall(chain)
    for a, op, b, c in steps:
        assert (int(a) + int(b) if op == "+" else int(a) - int(b)) == int(c), (a, op, b, c, chain)
    return len(steps)


@pytest.mark.parametrize("kwargs", [
    {"min_terms": 2, "max_terms": 2, "min_digits": 2, "max_digits": 2},   # the default study's target
    {"min_terms": 2, "max_terms": 2, "min_digits": 3, "max_digits": 3},
    {"min_terms": 3, "max_terms": 5, "min_digits": 1, "max_digits": 1},   # several steps: running partial results
])
def test_arithmetic_chains_are_true_step_by_step_and_end_in_the_answer(kwargs):
    items = reasoning_gym_items("basic_arithmetic", {**kwargs, "operators": ["+", "-"], "allow_parentheses": False,
                                                    "allow_negation": False}, 200, seed=5, key="k")
    for item in items:
        chain = gold_chain(item, "basic_arithmetic", "k")
        assert _steps_hold(chain) >= 1
        assert re.findall(r"-?\d+", chain.splitlines()[-1])[-1] == item["answer"], chain


def test_chains_go_by_place_value_one_true_step_at_a_time():
    add = gold_chain({"question": "45 + 67", "meta": {}}, "basic_arithmetic", "k")
    assert add.splitlines() == ["Split 67 into 60 and 7.", "45 + 60 = 105", "105 + 7 = 112"]
    sub = gold_chain({"question": "Calculate 47 - 83.", "meta": {}}, "basic_arithmetic", "k")
    assert sub.splitlines() == ["Split 83 into 80 and 3.", "47 - 80 = -33", "-33 - 3 = -36"] and _steps_hold(sub) == 2
    assert gold_chain({"question": "305 - 40", "meta": {}}, "basic_arithmetic", "k").splitlines() == ["305 - 40 = 265"]
    assert gold_chain({"question": "4 + 7 - 2", "meta": {}}, "basic_arithmetic", "k").splitlines() == [
        "4 + 7 = 11", "11 - 2 = 9"]
    assert gold_chain({"question": "1 + 347", "meta": {}}, "basic_arithmetic", "k").splitlines()[0] == (
        "Split 347 into 300, 40 and 7.")


def test_a_family_without_a_writer_is_one_error_naming_those_that_exist():
    with pytest.raises(DataError) as err:
        gold_chain({"question": "How many legs?", "meta": {}}, "leg_counting", "data.target.task")
    assert "data.target.task" in str(err.value) and "leg_counting" in str(err.value)
    for family in CHAIN_WRITERS:
        assert family in str(err.value)


def test_an_expression_it_cannot_read_is_an_error():
    assert parse_expression({"question": "Calculate 4 - 1 - 7 + 7.", "meta": {}}) == ([4, 1, 7, 7], ["-", "-", "+"])
    with pytest.raises(DataError, match="cannot read"):
        parse_expression({"question": "Calculate (3 * 4) + 2.", "meta": {}})


# --- chain training sets (train.chains) -------------------------------------------------------------------------

from contextlib import contextmanager  # noqa: E402

from driftlab.config import TrainConfig  # noqa: E402
from driftlab.eval.backend import Generation  # noqa: E402
from driftlab.train.mix import build_training_set  # noqa: E402


def _target_items(n=3):
    kwargs = {"min_terms": 2, "max_terms": 2, "min_digits": 2, "max_digits": 2, "operators": ["+"],
              "allow_negation": False, "allow_parentheses": False}
    raw = reasoning_gym_items("basic_arithmetic", kwargs, n, seed=1, key="k")
    return [{**it, "id": f"t{i}", "prompt": f"{it['question']}\nReply with only the final line 'Answer: <number>'.",
             "completion": f"Answer: {it['answer']}"} for i, it in enumerate(raw)]


def test_gold_chain_rows_ask_for_reasoning_and_end_in_the_targets_answer_line():
    items = _target_items()
    rows, report = build_training_set(items, TrainConfig(chains={"source": "gold"}), None, 0, set())
    assert report["chains"] == {"source": "gold", "rows": 3} and len(rows) == 3
    for row in rows:
        item = next(it for it in items if it["id"] == row["id"])
        assert row["prompt"].startswith(item["prompt"]) and "step by step" in row["prompt"]
        assert row["completion"].endswith(f"\nAnswer: {item['answer']}") and "Split" in row["completion"]


def _fake_backend(monkeypatch, replies_for):
    """open_backend yielding a backend whose samples are `replies_for(prompt)`: (text, finish) pairs."""
    class Fake:
        def sample(self, prompts, max_new_tokens, n, temperature, seed, stop=None, shared_prefix=""):
            assert n == 4 and temperature == 0.7
            return [[Generation(text, 10, finish, 0.0) for text, finish in replies_for(p)][:n] for p in prompts]

    @contextmanager
    def open_backend(model, eval_cfg, on_progress=None, log=print):
        yield Fake()

    monkeypatch.setattr("driftlab.eval.open.open_backend", open_backend)


def test_self_distilled_chains_keep_right_distinct_finished_reasoning_and_report_the_yield(monkeypatch):
    first, second = items = _target_items(2)

    def replies(prompt):
        right = int(first["answer"])
        if prompt.startswith(second["prompt"]):
            return [(f"First I add and I get {second['answer']}", "length")] * 4       # cut by the budget
        return [(f"I add the tens, then the ones: the sum is {right}.", "stop"),      # kept (no Answer line: lenient)
                (f"I add the tens, then the ones:  the sum is {right}.", "stop"),     # a repeat, whitespace aside
                (f"Adding carefully gives {right + 1}.\nAnswer: {right + 1}", "stop"),  # wrong
                (f"Answer: {right}", "stop")]                                         # no reasoning
    _fake_backend(monkeypatch, replies)
    rows, report = build_training_set(items, TrainConfig(chains={"source": "self"}), None, 0, set(),
                                      scorer="numeric")
    assert report["chains"] == {"source": "self", "questions": 2, "sampled": 8, "kept": 1, "questions_with_chain": 1,
                                "yield_questions": 0.5, "yield_chains": 1 / 8, "cut_by_budget": 4, "no_chain": 1,
                                "wrong": 1, "duplicates": 1, "over_cap": 0}
    assert rows[0]["id"] == first["id"] and "step by step" in rows[0]["prompt"]
    answer = first["answer"]
    assert rows[0]["completion"] == f"I add the tens, then the ones: the sum is {answer}.\nAnswer: {answer}"


def test_self_distillation_with_no_right_chain_is_one_error_naming_the_yield(monkeypatch):
    _fake_backend(monkeypatch, lambda prompt: [("I think it is about 3, roughly.", "stop")] * 4)
    with pytest.raises(DataError, match=r"kept none of 8 sampled chains \(yield 0"):
        build_training_set(_target_items(2), TrainConfig(chains={"source": "self"}), None, 0, set(), scorer="numeric")


# --- chain integrity (probes/integrity.py) ------------------------------------------------------------------------

from driftlab.probes.integrity import check_chain  # noqa: E402


def test_chain_integrity_finds_the_first_false_step_and_whether_the_answer_follows_it():
    true = gold_chain({"question": "83 - 47", "meta": {}}, "basic_arithmetic", "k")
    assert check_chain(true, "36") == {"steps": 2, "false_step": False, "first_false_at": None,
                                       "follows_false_step": None}
    assert check_chain("Tens: 8 - 1 - 4 = 3, so 3 x 4 = 12.", "12")["false_step"] is False  # several operands
    carried = "First 45 + 60 = 100. Then 100 + 7 = 107."
    result = check_chain(carried, "107")
    assert result["steps"] == 2 and result["false_step"] is True and result["follows_false_step"] is True
    assert result["first_false_at"] == len("First ") / len(carried)  # the first step is the false one
    late = "45 + 60 = 105. Then 105 + 7 = 113."
    assert check_chain(late, "112")["follows_false_step"] is False  # it answered something else than its chain
    assert check_chain(late, "113")["first_false_at"] == late.index("105 + 7") / len(late)
    assert check_chain("I think it is about twelve.", "12") == {"steps": 0, "false_step": None,
                                                              "first_false_at": None, "follows_false_step": None}
    assert check_chain("5 / 0 = 1", "1")["steps"] == 0  # not checkable


def test_chain_integrity_reads_thousands_separators_and_survives_huge_numbers():
    assert check_chain("1,234 + 5 = 1,239", "1239")["false_step"] is False
    assert check_chain("9" * 5000 + " + 1 = 2", "2")["steps"] == 0  # too large to evaluate: not checkable
