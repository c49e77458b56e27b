from driftlab.config import EvalConfig, StrategyConfig, SuiteConfig
from driftlab.eval.backend import Generation
from driftlab.eval.hf_backend import HFBackend
from driftlab.eval.run import evaluate_suite
from driftlab.eval.strategies.few_shot import few_shot_messages
from driftlab.eval.strategies.self_consistency import majority_vote
from driftlab.models import ResolvedModel, load_model


def gen(text, finish="stop"):
    return Generation(text, 2, finish, 0.1)


def suite(scorer="numeric", extraction="lenient"):
    return SuiteConfig(name="s", source="jsonl", path="x", scorer=scorer, extraction=extraction)


def test_majority_vote_is_over_normalised_extracted_answers():
    # Three different surface forms of 42 beat two votes for 41, though no single *string* has a majority.
    out = majority_vote([gen("Answer: 42"), gen("so 41"), gen("\\boxed{42.0}"), gen("Answer: 41"), gen("it is 42")],
                        suite())
    assert out.extra["votes"] == {"42": 3, "41": 2}
    assert out.extra["consistency"] == 0.6 and out.generation.text == "Answer: 42"
    assert out.generation.n_tokens == 10  # every sample's tokens are counted


def test_vote_winner_need_not_be_the_first_sample():
    out = majority_vote([gen("Answer: 7"), gen("Answer: 9"), gen("= 9"), gen("Answer: 9.0")], suite())
    assert out.generation.text == "Answer: 9" and out.extra["consistency"] == 0.75


def test_strict_vote_counts_only_explicit_answers_of_finished_samples():
    samples = [gen("Answer: 7"), gen("so 9"), gen("= 9"), gen("Answer: 9 and then", "length"), gen("Answer: 7.0")]
    out = majority_vote(samples, suite(extraction="strict"))
    assert out.extra["votes"] == {"7": 2} and out.extra["consistency"] == 0.4


def test_few_shot_never_uses_an_eval_item():
    items = [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(3)]
    shots = [{"prompt": "q1", "completion": "a1"}] + [{"prompt": f"s{i}", "completion": f"b{i}"} for i in range(4)]
    convs = few_shot_messages(items, shots, k=2)
    for conv, item in zip(convs, items):
        assert conv[-1] == {"role": "user", "content": item["prompt"]} and len(conv) == 5
        assert all(t["content"] != "q1" for t in conv[:-1])


class ReflectingBackend:
    """First answers 'Answer: 1'; after the critique turn answers the gold for even items only."""

    def chat(self, prompt):
        return str(prompt)

    def generate(self, prompts, max_new_tokens, stop=None, shared_prefix=""):
        out = []
        for p in prompts:
            if isinstance(p, list):
                gold = p[0]["content"].split("=")[1]
                out.append(gen(f"Answer: {gold}" if int(gold) % 2 == 0 else "Answer: 1"))
            else:
                out.append(gen("Answer: 1"))
        return out


def test_reflection_counts_changes_both_ways():
    items = [{"id": f"r{i}", "suite": "s", "prompt": f"x={g}", "answer": str(g), "choices": None}
             for i, g in enumerate([1, 2, 4, 3])]
    suite = SuiteConfig(name="s", source="jsonl", path="x", scorer="numeric")
    records, m = evaluate_suite(ReflectingBackend(), items, suite, EvalConfig(), StrategyConfig(name="reflection"))
    assert m["initial_accuracy"] == 0.25 and m["accuracy"] == 0.75
    assert (m["wrong_to_right"], m["right_to_wrong"], m["changed_rate"]) == (2, 0, 0.5)
    assert records[1]["initial_extracted"] == "1" and records[1]["extracted"] == "2"


def test_sampling_is_seeded_per_prompt_not_per_batch(tiny_model_dir):
    model, tok = load_model(ResolvedModel("tiny", str(tiny_model_dir), "x"))
    backend = HFBackend(model, tok)
    alone = backend.sample(["What is 3 + 4?"], 6, n=3, temperature=1.0, seed=1)[0]
    together = backend.sample(["Calculate 9 - 2.", "What is 3 + 4?"], 6, n=3, temperature=1.0, seed=1)[1]
    assert [g.text for g in alone] == [g.text for g in together]
    other_seed = backend.sample(["What is 3 + 4?"], 6, n=3, temperature=1.0, seed=2)[0]
    assert [g.text for g in other_seed] != [g.text for g in alone]


def test_few_shot_pool_is_checked_after_removing_eval_items():
    import pytest

    from driftlab.errors import DataError

    items = [{"prompt": "q0", "completion": "a0"}]
    with pytest.raises(DataError, match="only 1 available"):
        few_shot_messages(items, [{"prompt": "q0", "completion": "a0"}, {"prompt": "s", "completion": "b"}], k=2)


def test_vote_groups_equivalent_choice_and_math_answers():
    out = majority_vote([gen("Answer: Rome"), gen("Answer: B"), gen("Answer: B) Paris")], suite("choice"),
                        ["Rome", "Paris"])
    assert out.extra["votes"] == {"Paris": 2, "Rome": 1} and out.generation.text == "Answer: B"
    out = majority_vote([gen("Answer: 0.5"), gen("Answer: 1/3"), gen("\\boxed{\\frac{1}{2}}")], suite("math"))
    assert out.extra["consistency"] == 2 / 3 and out.generation.text == "Answer: 0.5"
