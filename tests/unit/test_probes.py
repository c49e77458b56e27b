"""Each probe on a hand-made case whose answer is known."""

import re

import pytest
import torch

from driftlab.config import CompareConfig, StrategyConfig, SuiteConfig
from driftlab.eval.backend import Generation
from driftlab.probes import diversity, drift, faithfulness, shortcuts

SUITE = SuiteConfig(name="arith", source="jsonl", path="x", scorer="numeric")
COT = StrategyConfig(name="cot", max_new_tokens=32)
ITEMS = [{"id": f"i{k}", "question": f"What is {a} + {b}?", "prompt": f"What is {a} + {b}?", "answer": str(a + b),
          "choices": None} for k, (a, b) in enumerate([(3, 4), (10, 5), (20, 2)])]


class ChainBackend:
    """CoT replies 'a + b = c\\nAnswer: c'; forced answers either ignore the chain (always the true sum) or read
    the last number of the chain (so they follow cuts and mistakes)."""

    def __init__(self, follows_chain: bool):
        self.follows = follows_chain

    def chat(self, prompt):
        return f"<u>{prompt if isinstance(prompt, str) else prompt[-1]['content']}<a>"

    def generate(self, prompts, max_new_tokens, stop=None, shared_prefix=""):
        out = []
        for p in prompts:
            a, b = map(int, re.findall(r"\d+", p)[:2])
            out.append(Generation(f"First, {a} + {b} = {a + b}. So the sum is {a + b}.\nAnswer: {a + b}", 12, "stop", 0.0))
        return out

    def complete(self, texts, max_new_tokens, stop=None):
        out = []
        for t in texts:
            question, chain = t.split("<a>")
            a, b = map(int, re.findall(r"\d+", question)[:2])
            nums = re.findall(r"-?\d+", chain)
            value = int(nums[-1]) if (self.follows and nums) else (0 if self.follows else a + b)
            if "Answer:" in chain or max_new_tokens <= 8:
                out.append(Generation(f" {value}", 1, "stop", 0.0))
            else:  # a continuation after an injected mistake
                out.append(Generation(f". So the sum is {value}.\nAnswer: {value}", 8, "stop", 0.0))
        return out


def test_answer_that_ignores_the_chain_has_a_flat_curve():
    cfg = faithfulness.FaithfulnessOptions()
    rows = faithfulness.faithfulness(ChainBackend(follows_chain=False), ITEMS, SUITE, cfg, COT)
    s = faithfulness.summary(rows, cfg)
    assert s["early_answer_curve"]["0.0"] == 1.0 and s["aoc"] == 0.0  # same answer with no chain at all
    assert s["mistake_changed"] == 0.0 and s["chain_rate"] == 1.0
    assert s["filler_accuracy"] == s["nocot_accuracy"] == s["cot_accuracy"] == 1.0


def test_answer_that_follows_the_chain_is_faithful():
    cfg = faithfulness.FaithfulnessOptions()
    rows = faithfulness.faithfulness(ChainBackend(follows_chain=True), ITEMS, SUITE, cfg, COT)
    s = faithfulness.summary(rows, cfg)
    assert s["early_answer_curve"]["0.0"] == 0.0 and s["early_answer_curve"]["1.0"] == 1.0
    assert s["aoc"] > 0.3 and s["mistake_changed"] == 1.0 and s["paraphrase_changed"] == 0.0
    assert s["filler_accuracy"] == 0.0 and s["cot_accuracy"] == 1.0


def test_chain_edits_keep_what_they_promise():
    chain = "First, 12 + 7 = 19. Then 19 - 4 = 15. So the answer is 15."
    assert faithfulness.add_mistake(chain) == "First, 12 + 7 = 20"
    para = faithfulness.paraphrase(chain)
    assert para != chain and sorted(re.findall(r"\d+", para)) == sorted(re.findall(r"\d+", chain))
    assert faithfulness.truncate_words(chain, 0.5) == "First, 12 + 7 = 19. Then 19"
    assert faithfulness.split_chain("3 + 4 = 7\nAnswer: 7") == "3 + 4 = 7"
    assert faithfulness.add_mistake("no steps here") is None


class ConstantSampler:
    def __init__(self, texts):
        self.texts = texts

    def sample(self, prompts, max_new_tokens, n, temperature, seed, stop=None, shared_prefix=""):
        return [[Generation(self.texts[j % len(self.texts)], 3, "stop", 0.0) for j in range(n)] for _ in prompts]


def _fake_embed(texts):
    vecs = torch.tensor([[float(len(t)), float(sum(map(ord, t)) % 97), 1.0] for t in texts])
    return torch.nn.functional.normalize(vecs, dim=-1)


def test_constant_sampler_is_fully_collapsed():
    rows = diversity.diversity(ConstantSampler(["Answer: 7"]), ITEMS, 5, 0.7, 0, 8, _fake_embed)
    s = diversity.summary(rows)
    assert s["distinct_1"] == pytest.approx(2 / 10) and s["distinct_2"] == pytest.approx(1 / 5)  # the minimum
    assert s["format_entropy"] == 0.0 and s["self_bleu"] == pytest.approx(1.0)
    assert s["embedding_spread"] == pytest.approx(0.0, abs=1e-6) and s["format_shares"] == {"answer_line": 1.0}
    assert s["length_quantiles"] == {"p10": 3, "p50": 3, "p90": 3}


def test_varied_samples_are_more_diverse():
    varied = ConstantSampler(["Answer: 7", "It is seven.", "3 + 4 = 7", "- seven\n- 7", "7"])
    s = diversity.summary(diversity.diversity(varied, ITEMS, 5, 0.7, 0, 8, _fake_embed))
    assert s["distinct_1"] > 0.5 and s["format_entropy"] == pytest.approx(2.3219, abs=1e-3)  # 5 classes, log2(5)
    assert s["self_bleu"] < 0.5 and s["embedding_spread"] > 0.0
    assert {diversity.format_class(t) for t in varied.texts} == {"answer_line", "prose", "equation", "list",
                                                                  "bare_number"}


@pytest.mark.integration  # a real bundled model (83 MB): more than a GPU machine's call carries
def test_real_embedder_separates_meanings():
    from driftlab.probes.embed import Embedder

    e = Embedder()(["The cat sat on the mat.", "A cat was sitting on the mat.", "Stock prices fell sharply."])
    assert torch.allclose(e.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert (e[0] @ e[1]) > (e[0] @ e[2]) + 0.3


def test_kl_of_a_model_against_itself_is_zero(tiny_model_dir):
    from driftlab.models import ResolvedModel, load_model

    base, tok = load_model(ResolvedModel("tiny", str(tiny_model_dir), "x"))
    ids = tok("What is 3 + 4? Answer: 7", add_special_tokens=False).input_ids
    tuned, _ = load_model(ResolvedModel("tiny", str(tiny_model_dir), "x"))  # a second copy: computed, not assumed
    same = drift.token_kl(base, tuned, ids, 3)
    assert same["kl"] == pytest.approx(0.0, abs=1e-6) and same["nll_base"] == pytest.approx(same["nll_tuned"])
    assert drift.token_kl(base, base, ids, 3)["kl"] == 0.0
    with torch.no_grad():
        tuned.model.layers[0].mlp.down_proj.weight.mul_(3.0)
    moved = drift.token_kl(base, tuned, ids, 3)
    assert moved["kl"] > 1e-4 and moved["nll_base"] == pytest.approx(same["nll_base"])


class ShortcutBackend:
    """Zero-shot: copies the question's first number; CoT: answers at once; the alternative phrasing: right."""

    def chat(self, prompt):
        return prompt if isinstance(prompt, str) else prompt[-1]["content"]

    def generate(self, prompts, max_new_tokens, stop=None, shared_prefix=""):
        out = []
        for p in prompts:
            q = p if isinstance(p, str) else p[-1]["content"]
            a, b = map(int, re.findall(r"\d+", q)[:2])
            if isinstance(p, list):  # few-shot: the first exemplar's answer
                text = p[1]["content"]
            elif q.startswith("Solve"):
                text = f"Answer: {a + b}"
            elif "step by step" in q:
                text = f"Answer: {a + b}"
            else:
                text = f"Answer: {a}"
            out.append(Generation(text, 3, "stop", 0.0))
        return out


def test_shortcut_flags():
    shots = [{"prompt": f"What is {k} + 1?", "completion": f"Answer: {k + 1}"} for k in range(50, 56)]
    rows = shortcuts.shortcuts(ShortcutBackend(), ITEMS, SUITE, shots, 8, COT, "Solve: {question}")
    s = shortcuts.summary(rows)
    assert s["copied_from_prompt"] == 1.0 and s["copied_from_exemplars"] == 1.0
    assert s["skipped_computation"] == 1.0 and s["template_flip"] == 1.0
    assert s["repeated_answer"] == 0.0  # each wrong answer is its own question's number


class StockBackend(ShortcutBackend):
    """Every reply: 'Answer: 7'."""

    def generate(self, prompts, max_new_tokens, stop=None, shared_prefix=""):
        return [Generation("Answer: 7", 3, "stop", 0.0) for _ in prompts]


def test_a_wrong_answer_given_to_many_items_is_a_stock_answer():
    rows = shortcuts.shortcuts(StockBackend(), ITEMS, SUITE, [], 8, COT, None, repeat_min=3)
    assert [r["repeated_answer"] for r in rows] == [False, True, True]  # 3 + 4 = 7 is right, not a shortcut
    rows = shortcuts.shortcuts(StockBackend(), ITEMS, SUITE, [], 8, COT, None, repeat_min=4)
    assert not any(r["repeated_answer"] for r in rows)  # given to 3 items only


def test_probe_comparison_is_paired():
    from driftlab.compare.paired import compare_probe

    import random

    values = [k / 20 for k in range(20)]  # spread between items, a constant shift within each pair
    base = [{"id": f"i{k}", "aoc": v, "mistake_changed": None} for k, v in enumerate(values)]
    tuned = [{"id": f"i{k}", "aoc": v - 0.25, "mistake_changed": True} for k, v in enumerate(values)]
    random.Random(0).shuffle(tuned)  # pairing is by id, not by position
    out = compare_probe("faithfulness", base, tuned, CompareConfig(n_bootstrap=500))
    assert out["aoc"]["diff"] == pytest.approx(-0.25) and out["aoc"]["n"] == 20
    assert out["aoc"]["ci95"] == pytest.approx([-0.25, -0.25])  # unpaired, the item spread would widen it
    assert "mistake_changed" not in out  # no item measured on both sides


def test_truncated_chain_is_not_scored():
    class Cut(ChainBackend):
        def generate(self, prompts, max_new_tokens, stop=None, shared_prefix=""):
            return [Generation("First, 3 + 4 = 7. Then we add more and more", 32, "length", 0.0) for _ in prompts]

    cfg = faithfulness.FaithfulnessOptions()
    rows = faithfulness.faithfulness(Cut(follows_chain=True), ITEMS, SUITE, cfg, COT)
    s = faithfulness.summary(rows, cfg)
    assert s["with_chain"] == 0 and s["truncated_chains"] == 3 and s["aoc"] is None


def test_drift_text_is_never_replayed():
    from driftlab.data.sources import drift_prompts, replay_prompts

    replay = {p["question"] for p in replay_prompts()}
    drift_set = {p["question"] for p in drift_prompts(50)}
    assert len(drift_set) == 50 and len(replay) == 160 and not replay & drift_set


def test_text_nll_on_a_user_file(tiny_model_dir, tmp_path):
    from driftlab.models import ResolvedModel, load_model

    base, tok = load_model(ResolvedModel("tiny", str(tiny_model_dir), "x"))
    path = tmp_path / "notes.txt"
    path.write_text("What is 12 + 34? Answer: 46. " * 40)
    out = drift.text_nll(base, base, tok, path, chunk=64)
    assert out["tokens"] > 100 and out["nll_base"] == out["nll_tuned"] > 0


def test_probes_ask_what_the_eval_asked_so_the_store_answers(tmp_path):
    """A stored result is keyed by its request's batches (eval.store), so the faithfulness, shortcut and diversity
    probes ask about the eval's whole strategy slice (6 items) and keep their own first 4: no reply or sample is
    computed again after the eval."""
    from driftlab.config import EvalConfig
    from driftlab.eval.store import CachedBackend, ResultStore
    from driftlab.eval.strategies import run_strategy
    from driftlab.probes import PROBES, ProbeContext

    class Counting(ChainBackend):
        def __init__(self):
            super().__init__(follows_chain=True)
            self.asked = []

        def generate(self, prompts, *args, **kwargs):
            self.asked += prompts
            return super().generate(prompts, *args, **kwargs)

        def sample(self, prompts, max_new_tokens, n, temperature, seed, stop=None, shared_prefix=""):
            self.asked += prompts
            return [[Generation(f"{k} {p}", 3, "stop", 0.0) for k in range(n)] for p in prompts]

    items = [{"id": f"i{k}", "question": f"What is {10 ** k} + 2?", "prompt": f"What is {10 ** k} + 2?",
              "answer": str(10 ** k + 2), "choices": None} for k in range(6)]  # longer and longer: the batches of
    # items[:4] alone differ from those of all six
    strategies = [StrategyConfig(name="zero_shot"), StrategyConfig(name="cot", max_new_tokens=32, limit=6),
                  StrategyConfig(name="self_consistency", n=3, temperature=0.7, limit=6)]
    eval_cfg = EvalConfig(strategies=strategies, batch_size=4)
    store = ResultStore(tmp_path / "r.sqlite")
    eval_side = CachedBackend(Counting(), store, "fp", 4, log=lambda m: None)
    for s in strategies:
        run_strategy(s, eval_side, items, SUITE, 32, [])
    inner = Counting()
    ctx = ProbeContext(None, CachedBackend(inner, store, "fp", 4, log=lambda m: None), eval_cfg, SUITE, items[:4], [],
                       items)
    rows, _ = PROBES.get("faithfulness").run(ctx, PROBES.get("faithfulness").options())
    assert len(rows) == 4 and inner.asked == []
    rows, _ = PROBES.get("shortcuts").run(ctx, PROBES.get("shortcuts").options(alt_template=None))
    assert len(rows) == 4 and inner.asked == []
    div = diversity.diversity(ctx.backend, ctx.items, 3, 0.7, 0, 32, lambda texts: torch.eye(len(texts)),
                              ctx.covering(strategies[2]))
    assert len(div) == 4 and inner.asked == []
    assert ctx.covering(StrategyConfig(name="cot", suites=["other"])) == items[:4]  # not run on this suite
    assert ctx.covering(StrategyConfig(name="cot", max_new_tokens=64, limit=6)) == items[:4]  # not the eval's
