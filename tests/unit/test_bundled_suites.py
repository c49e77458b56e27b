"""The suites bundled with driftlab (src/driftlab/suites/): well-formed items, one right answer among distinct
choices, no question twice, and the held-out sizes of the default study available."""

import json
from importlib.resources import files
from pathlib import Path

import pytest

from driftlab.config import load_config
from driftlab.data.sources import jsonl_items

SUITES = files("driftlab") / "suites"


def _items(name: str) -> list[dict]:
    return [json.loads(line) for line in (SUITES / f"{name}.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("name", ["cities", "antonyms", "number_sequences", "capitals", "languages", "opposites"])
def test_multiple_choice_items_have_one_right_answer(name):
    items = _items(name)
    assert len({it["question"].lower() for it in items}) == len(items)
    for it in items:
        assert len(it["choices"]) == len(set(it["choices"])) >= 2, it
        assert it["choices"].count(it["answer"]) == 1, it


def test_antonym_distractors_are_never_the_question_word():
    for it in _items("antonyms"):
        word = it["question"].split('"')[1]
        assert word not in it["choices"] and word != it["answer"], it


def test_number_sequences_answer_continues_the_sequence_and_no_choice_repeats_a_term():
    for it in _items("number_sequences"):
        shown = [int(x) for x in it["question"].split(":")[1].split("...")[0].strip(" ,").split(", ")]
        step = shown[1] - shown[0]
        assert all(b - a == step for a, b in zip(shown, shown[1:])) and int(it["answer"]) == shown[-1] + step
        assert not {int(c) for c in it["choices"]} & set(shown), it


def test_the_default_study_asks_for_no_more_items_than_are_bundled():
    cfg = load_config(Path(__file__).parents[2] / "configs" / "default.yaml")
    for suite in cfg.data.heldout:
        if suite.source == "jsonl":  # the file the data stage reads (a bare name resolves to the bundled suite)
            assert suite.size <= len(jsonl_items(suite.path)[0]), suite.name
