import random

import pytest

from driftlab.config import DataConfig
from driftlab.data import build_data
from driftlab.data.perturb import renumber, reorder_sentences
from driftlab.errors import ConfigError, DataError
from tests.conftest import ARITH


def test_renumber_keeps_digit_counts_and_recomputes_gold():
    rng = random.Random(0)
    for _ in range(20):
        q, a = renumber("Calculate 45 - 12 * ( 3 + 7 ).", rng, "s")
        nums = [int(x) for x in __import__("re").findall(r"\d+", q)]
        assert [len(str(n)) for n in nums] == [2, 2, 1, 1]
        assert int(a) == nums[0] - nums[1] * (nums[2] + nums[3])


def test_renumber_division_stays_whole():
    q, a = renumber("Calculate 84 / 7.", random.Random(3), "s")
    x, y = map(int, __import__("re").findall(r"\d+", q))
    assert x / y == int(a)


def test_renumber_without_expression_is_a_clear_error():
    with pytest.raises(DataError, match="no arithmetic expression"):
        renumber("What is the capital of France?", random.Random(0), "caps")


def test_reorder_sentences_keeps_facts_and_question():
    text = "Ann is married to Bob. They have a child called Cy. Cy is married to Di.\n\nWhat is Di to Ann?"
    out = reorder_sentences(text, random.Random(1))
    assert out != text and out.endswith("\n\nWhat is Di to Ann?")
    facts = lambda t: sorted(t.split("\n\n")[0].replace(". ", ".|").split("|"))
    assert facts(out) == facts(text)


def test_reorder_keeps_decimals_and_titles_whole():
    text = "Mr. Lee pays 3.5 dollars. Ann pays 2 dollars. Bo pays 1 dollar.\n\nWho pays most?"
    out = reorder_sentences(text, random.Random(4))
    assert "Mr. Lee pays 3.5 dollars." in out and out.endswith("Who pays most?")


def test_renumber_refuses_decimals():
    with pytest.raises(DataError, match="integers only"):
        renumber("Calculate 3.5 + 2.", random.Random(0), "s")


def test_perturbed_heldout_copy_of_the_target():
    plain = {**ARITH["task_kwargs"], "allow_parentheses": False, "allow_negation": False}
    cfg = DataConfig(target={**ARITH, "size": 10, "train_size": 20},
                     heldout=[{**ARITH, "task_kwargs": plain, "name": "arith_renumbered", "perturb": ["renumber"],
                               "size": 10}])
    bundle = build_data(cfg, seed=0)
    for it in bundle.suites["arith_renumbered"]:
        a, op, b = it["question"].removeprefix("Calculate ").rstrip(".").split()
        assert int(it["answer"]) == (int(a) + int(b) if op == "+" else int(a) - int(b))


def test_target_cannot_be_perturbed(tmp_path):
    import yaml

    from driftlab.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": {"target": {**ARITH, "perturb": ["renumber"]}}}))
    with pytest.raises(ConfigError, match="perturb a held-out copy"):
        load_config(path)
