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


def test_two_term_chains_show_carries_and_borrows():
    add = gold_chain({"question": "45 + 67", "meta": {}}, "basic_arithmetic", "k")
    assert add.splitlines() == ["Ones: 5 + 7 = 12, write 2, carry 1.", "Tens: 4 + 6 = 10, 10 + 1 = 11, write 11.",
                                "So 45 + 67 = 112."]
    sub = gold_chain({"question": "Calculate 47 - 83.", "meta": {}}, "basic_arithmetic", "k")
    assert "borrow" in sub and sub.endswith("So 47 - 83 = -36.") and _steps_hold(sub) == 4


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
