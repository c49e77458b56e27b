import pytest

from driftlab.eval.taxonomy import TAGS, error_tags, has_repetition_loop, tag_rates


def tags(output, question="What is 12 + 30?", extracted=None, finish="stop", format_ok=True, correct=None):
    return error_tags(output, question, extracted, finish, format_ok, correct=correct)


def test_clean_chain_has_no_tags():
    assert tags("12 + 30 = 42\nAnswer: 42", extracted="42") == []
    assert tags("12 + 30 = 42\nAnswer: 42", extracted="42", correct=True) == []


def test_wrong_step_and_contradiction():
    assert tags("12 + 30 = 41\nAnswer: 41", extracted="41") == ["arithmetic_error"]
    assert tags("12 + 30 = 42\nAnswer: 40", extracted="40") == ["answer_contradicts_chain"]


def test_a_right_answer_keeps_its_mechanical_tags():
    # right for the wrong reason: the false step is still counted, and no residual tag is added
    out = "12 + 30 = 41\nSo 42.\nAnswer: 42"
    assert tags(out, extracted="42", correct=True) == ["arithmetic_error", "answer_contradicts_chain"]
    assert tags("the answer is 42", extracted="42", format_ok=False, correct=True) == ["format_violation"]


def test_a_wrong_bare_answer_gets_wrong_value():
    assert tags("Answer: 42", question="What is 12 + 29?", extracted="42", correct=False) == ["wrong_value"]
    assert tags("42", question="What is 12 + 29?", extracted="42", correct=False) == ["wrong_value"]
    # unknown correctness: only the mechanical tags
    assert tags("Answer: 42", question="What is 12 + 29?", extracted="42") == []


def test_a_wrong_reply_with_nothing_extracted_gets_no_answer():
    assert tags("I am not sure.", extracted=None, correct=False) == ["no_answer"]
    assert tags("Answer:", extracted="", correct=False) == ["no_answer"]


def test_residual_tags_only_when_nothing_mechanical_explains_the_error():
    assert tags("12 + 30 = 41\nAnswer: 41", extracted="41", correct=False) == ["arithmetic_error"]
    assert tags("", finish="length", correct=False) == ["empty", "truncated"]


def test_unsupported_number_breaks_the_chain():
    out = "12 + 30 = 42\n42 * 37 = 1554\nAnswer: 1554"
    assert tags(out, extracted="1554") == ["unsupported_number"]
    # a value produced by an earlier step may be used
    assert tags("12 + 30 = 42\n42 - 12 = 30\nAnswer: 30", extracted="30") == []
    # small integers need no source: "three times" says 3 in words
    assert tags("12 + 30 = 42\n42 * 3 = 126\nAnswer: 126", extracted="126") == []


def test_split_parts_are_produced_by_the_split():
    # the gold-chain form (data.chains): place-value parts of a term feed the next steps
    q = "Calculate 41 + 375."
    out = "Split 375 into 300, 70 and 5.\n41 + 300 = 341\n341 + 70 = 411\n411 + 5 = 416\nAnswer: 416"
    assert tags(out, question=q, extracted="416") == []
    # a split that does not add up is a false step; its parts are still stated, so they are not unsupported
    out = "Split 375 into 300, 60 and 5.\n41 + 300 = 341\n341 + 60 = 401\n401 + 5 = 406\nAnswer: 406"
    assert tags(out, question=q, extracted="406") == ["arithmetic_error"]
    out = "41 + 370 = 411\n411 + 5 = 416\nAnswer: 416"  # 370 never stated: no split, no source
    assert tags(out, question=q, extracted="416") == ["unsupported_number"]


def test_unit_conversion_factors_are_supported():
    q = "How many inches are in 5 feet?"
    assert tags("5 feet = 5 * 12 = 60 inches\nAnswer: 60", question=q, extracted="60") == []
    assert tags("5 * 37 = 185\nAnswer: 185", question=q, extracted="185") == ["unsupported_number"]
    # through a unit the reply introduces: miles -> feet -> inches
    q = "How many inches are in 2 miles?"
    out = "2 * 5280 = 10560 feet\n10560 * 12 = 126720 inches\nAnswer: 126720"
    assert tags(out, question=q, extracted="126720") == []
    # a factor of units nobody mentions has no source: 5280 in a question about kilograms
    q = "A box weighs 3 kilograms. How many grams?"
    assert tags("3 * 5280 = 15840\nAnswer: 15840", question=q, extracted="15840") == ["unsupported_number"]
    assert tags("3 * 1000 = 3000\nAnswer: 3000", question=q, extracted="3000") == []  # metric prefix


@pytest.mark.parametrize("factor", ["2.54", "2.2046", "1.609", "0.3048", "0.4536"])
def test_factors_need_their_units(factor):
    named = {"2.54": "inches to centimeters", "2.2046": "kilograms to pounds", "1.609": "miles to kilometers",
             "0.3048": "feet to meters", "0.4536": "pounds to kilograms"}[factor]
    out = f"7 * {factor} = 99\nAnswer: 99"  # the step is false too; only the source of the factor matters here
    assert "unsupported_number" not in tags(out, question=f"Convert 7 {named}.", extracted="99")
    assert "unsupported_number" in tags(out, question="Convert 7 apples.", extracted="99")


def test_a_percentage_in_the_question_is_supported_as_a_fraction():
    q = "What is 20% of 50?"
    assert tags("0.2 * 50 = 10\nAnswer: 10", question=q, extracted="10", correct=True) == []
    assert tags("0.3 * 50 = 15\nAnswer: 15", question=q, extracted="15", correct=False) == ["unsupported_number"]
    assert tags("0.35 * 50 = 17.5\nAnswer: 17.5", question="What is 35 percent of 50?", extracted="17.5") == []


def test_common_constants_are_supported():
    q = "A train runs for 4 hours at 75 km per hour. How far does it go in minutes?"
    assert tags("4 * 60 = 240\n75 * 4 = 300\nAnswer: 300", question=q, extracted="300") == []
    assert tags("2 * 3.14 = 6.28\nAnswer: 6.28", question="A circle of radius 1.", extracted="6.28") == []


# (reply, question, extracted, finish, format_ok, expected tags): every one scored wrong
WRONG = [
    ("Answer: 41", "What is 12 + 30?", "41", "stop", True, ["wrong_value"]),
    ("41", "What is 12 + 30?", "41", "stop", True, ["wrong_value"]),
    ("", "What is 12 + 30?", None, "length", False, ["empty", "truncated"]),
    ("Let me think", "What is 12 + 30?", None, "length", False, ["truncated", "format_violation"]),
    ("Let me think", "What is 12 + 30?", None, "stop", True, ["no_answer"]),
    ("I think so. " * 6, "What is 12 + 30?", None, "stop", False, ["repetition_loop", "format_violation"]),
    ("12 + 30 = 43\nAnswer: 43", "What is 12 + 30?", "43", "stop", True, ["arithmetic_error"]),
    ("12 + 30 = 42\nAnswer: 24", "What is 12 + 30?", "24", "stop", True, ["answer_contradicts_chain"]),
    ("Answer: Paris", "What is the capital of Italy?", "Paris", "stop", True, ["wrong_value"]),
    ("5 feet = 5 * 12 = 60 inches\nAnswer: 61", "How many inches are in 5 feet?", "61", "stop", True,
     ["answer_contradicts_chain"]),
    ("5 * 37 = 185\nAnswer: 185", "How many inches are in 5 feet?", "185", "stop", True, ["unsupported_number"]),
]


@pytest.mark.parametrize("reply, question, extracted, finish, format_ok, expected", WRONG)
def test_every_wrong_reply_is_explained(reply, question, extracted, finish, format_ok, expected):
    got = error_tags(reply, question, extracted, finish, format_ok, correct=False)
    assert got == expected and set(got) <= set(TAGS)


def test_tag_rates_cover_every_tag():
    records = [{"errors": ["wrong_value"]}, {"errors": []}, {"errors": ["unsupported_number", "truncated"]}]
    rates = tag_rates(records)
    assert list(rates) == list(TAGS)
    assert rates["wrong_value"] == pytest.approx(1 / 3)
    assert rates["unsupported_number"] == pytest.approx(1 / 3) and rates["no_answer"] == 0
    assert "hallucinated_quantity" not in TAGS


def test_format_truncation_empty_and_loops():
    assert tags("the answer is 42", extracted="42", format_ok=False) == ["format_violation"]
    assert tags("", finish="length") == ["empty", "truncated"]
    looped = "I think so. " * 6
    assert has_repetition_loop(looped) and "repetition_loop" in tags(looped, format_ok=False)
    assert not has_repetition_loop("one two three four five six seven eight nine")


def test_chained_expressions_and_operator_minus_are_not_errors():
    assert tags("12 + 30 + 5 = 47\nAnswer: 47", question="What is 12 + 30 + 5?", extracted="47") == []
    assert tags("45-23=22\nAnswer: 22", question="What is 45-23?", extracted="22") == []
    # a chain's result feeds later steps, and a continued "= c op d = e" is a step of its own
    q = "What is 75 + 12 + 30, doubled, plus 13?"
    assert tags("75 + 12 + 30 = 117 * 2 = 234\n234 + 13 = 247\nAnswer: 247", question=q, extracted="247") == []


def test_a_false_chain_is_an_arithmetic_error():
    q = "Calculate 77 + 1 + 1 + 2."
    assert tags("77 + 1 + 1 + 2 = 13\n13 + 2 = 15\nAnswer: 15", question=q, extracted="15") == ["arithmetic_error"]
    assert tags("2 + 3 * 4 = 14\nAnswer: 14", question="What is 2 + 3 * 4?", extracted="14") == []  # precedence
    # a result stated to k decimals may be rounded to k decimals
    q = "How many kilometers are 5 miles?"
    assert tags("5 * 1.609 = 8.05\nAnswer: 8.05", question=q, extracted="8.05") == []
    assert tags("5 * 1.609 = 8.1\nAnswer: 8.1", question=q, extracted="8.1") == ["arithmetic_error"]


def test_words_recurring_far_apart_are_not_a_loop():
    text = ("the sum of the two numbers is large; then the sum of the two numbers is checked; so the sum of the "
            "two numbers is 42")
    assert not has_repetition_loop(text)
    assert has_repetition_loop("42 42 42 42")
