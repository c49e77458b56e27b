from driftlab.eval.taxonomy import error_tags, has_repetition_loop


def tags(output, question="What is 12 + 30?", extracted=None, finish="stop", format_ok=True):
    return error_tags(output, question, extracted, finish, format_ok)


def test_clean_chain_has_no_tags():
    assert tags("12 + 30 = 42\nAnswer: 42", extracted="42") == []


def test_wrong_step_and_contradiction():
    assert tags("12 + 30 = 41\nAnswer: 41", extracted="41") == ["arithmetic_error"]
    assert tags("12 + 30 = 42\nAnswer: 40", extracted="40") == ["answer_contradicts_chain"]


def test_hallucinated_quantity_breaks_the_chain():
    out = "12 + 30 = 42\n42 * 3 = 126\nAnswer: 126"
    assert tags(out, extracted="126") == ["hallucinated_quantity"]
    # a value produced by an earlier step may be used
    assert tags("12 + 30 = 42\n42 - 12 = 30\nAnswer: 30", extracted="30") == []


def test_format_truncation_empty_and_loops():
    assert tags("the answer is 42", extracted="42", format_ok=False) == ["format_violation"]
    assert tags("", finish="length") == ["empty", "truncated"]
    looped = "I think so. " * 6
    assert has_repetition_loop(looped) and "repetition_loop" in tags(looped, format_ok=False)
    assert not has_repetition_loop("one two three four five six seven eight nine")


def test_chained_expressions_and_operator_minus_are_not_errors():
    assert tags("12 + 30 + 5 = 47\nAnswer: 47", question="What is 12 + 30 + 5?", extracted="47") == []
    assert tags("45-23=22\nAnswer: 22", question="What is 45-23?", extracted="22") == []


def test_words_recurring_far_apart_are_not_a_loop():
    text = ("the sum of the two numbers is large; then the sum of the two numbers is checked; so the sum of the "
            "two numbers is 42")
    assert not has_repetition_loop(text)
    assert has_repetition_loop("42 42 42 42")
