import random

import pytest

from driftlab.config import DataConfig
from driftlab.data import build_data
from driftlab.data.perturb import KNOWN_NAMES, NEW_NAMES, rename_entities, renumber, reorder_sentences
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


def test_rename_entities_is_consistent_and_keeps_gender():
    item = {"question": "Jayden is married to Elizabeth. They have a child called Edward. Edward loves Elizabeth.\n\n"
                        "How is Jayden related to Elizabeth? Provide the relationship in one word.",
            "answer": "husband", "meta": {"person1": "Jayden", "person2": "Elizabeth", "family_size": 3}}
    out = rename_entities(item, random.Random(0), "fam")
    assert not any(n in out["question"] for n in ("Jayden", "Elizabeth", "Edward"))
    assert out["answer"] == "husband" and out["meta"]["family_size"] == 3
    p1, p2 = out["meta"]["person1"], out["meta"]["person2"]
    assert p1 in NEW_NAMES["male"] and p2 in NEW_NAMES["female"]
    assert out["question"].startswith(f"{p1} is married to {p2}.") and out["question"].count(p2) == 3
    assert "How is" in out["question"] and "Provide" in out["question"]  # ordinary capitalised words untouched


def test_rename_entities_without_names_is_a_clear_error():
    with pytest.raises(DataError, match="found no first name"):
        rename_entities({"question": "What is 3 + 4?", "answer": "7"}, random.Random(0), "arith")


def test_renamed_family_suite_is_scored_by_reasoning_gym():
    from driftlab.eval.run import _reasoning_gym_scorer
    from driftlab.config import SuiteConfig

    fam = {"name": "fam_renamed", "source": "reasoning_gym", "task": "family_relationships",
           "task_kwargs": {"min_family_size": 3, "max_family_size": 4}, "perturb": ["rename_entities"], "size": 8,
           "scorer": "reasoning_gym"}
    cfg = DataConfig(target={**ARITH, "size": 5, "train_size": 10}, heldout=[fam])
    items = build_data(cfg, seed=0).suites["fam_renamed"]
    renamed, known = set(NEW_NAMES["male"] + NEW_NAMES["female"]), set(KNOWN_NAMES["male"] + KNOWN_NAMES["female"])
    people = [it["meta"][p] for it in items for p in ("person1", "person2")]
    assert all(p in renamed or p not in known for p in people)  # every known name replaced (Grace: a word, kept)
    assert sum(p in renamed for p in people) >= len(people) - 2
    assert all(it["meta"]["person1"] in it["question"] for it in items)
    plain = build_data(DataConfig(target={**ARITH, "size": 5, "train_size": 10},
                                  heldout=[{**fam, "perturb": []}]), seed=0).suites["fam_renamed"]
    assert all(a["question"] != b["question"] and a["answer"] == b["answer"] for a, b in zip(items, plain))
    judge = _reasoning_gym_scorer(SuiteConfig(**fam))
    assert all(judge(it["answer"], it)[0] for it in items)  # gold still right after renaming
    assert not any(judge("grandfather" if it["answer"] != "grandfather" else "son", it)[0] for it in items)
