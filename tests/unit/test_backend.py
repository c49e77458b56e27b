"""The HF backend on a tiny random Qwen3: loglik against a hand computation, batch invariance of loglik, greedy
and sampling."""

import pytest
import torch

from driftlab.eval.hf_backend import HFBackend
from driftlab.models import ResolvedModel, load_model
from tests.conftest import logits_of


def _backend(tiny_model_dir, batch_size, dtype="float32"):
    # float32: exact comparisons (bf16, the 'auto' choice on bf16 CPUs, rounds differently per batch shape)
    model, tok = load_model(ResolvedModel("tiny", str(tiny_model_dir), "x"), dtype)
    return HFBackend(model, tok, batch_size=batch_size), model, tok


def test_loglik_matches_manual_computation(tiny_model_dir):
    backend, model, tok = _backend(tiny_model_dir, batch_size=3)
    prompts, choices = ["What is 12 + 34?", "Capital of France?"], [["46", "47", "5"], ["Paris", "Rome"]]
    scores = backend.loglik(prompts, choices)
    ctx = tok(backend.chat(prompts[1]), add_special_tokens=False).input_ids
    cont = tok("Rome", add_special_tokens=False).input_ids
    with torch.no_grad():
        logp = logits_of(model, [ctx + cont])[0].log_softmax(-1)
    manual = sum(logp[len(ctx) - 1 + i, t].item() for i, t in enumerate(cont))
    assert abs(scores[1][1] - manual) < 1e-4
    assert [len(s) for s in scores] == [3, 2]


def _manual_loglik(backend, model, tok, prompt, choice):
    ctx = tok(backend.chat(prompt), add_special_tokens=False).input_ids
    cont = tok(choice, add_special_tokens=False).input_ids
    with torch.no_grad():
        logp = logits_of(model, [ctx + cont])[0].log_softmax(-1)
    return sum(logp[len(ctx) - 1 + i, t].item() for i, t in enumerate(cont))


PROMPTS = ["What is 12 + 34?", "Capital of France?", "Which word means the opposite of 'cold'? Think of weather.",
           "x", "In which country is the city of Lyon?"]
CHOICES = [["46", "47", "5"], ["Paris", "Rome"], ["hot", "freezing cold", "wet", "a very long answer indeed"],
           ["y", "z"], ["France", "Spain", "Germany", "Italy"]]


def test_batched_loglik_matches_each_choice_scored_alone(tiny_model_dir):
    """Prompts of different lengths share a batch, choices of one to several tokens share the continuation pass:
    every score equals context + choice run as one sequence."""
    backend, model, tok = _backend(tiny_model_dir, batch_size=4)
    scores = backend.loglik(PROMPTS, CHOICES)
    for prompt, opts, got in zip(PROMPTS, CHOICES, scores):
        assert got == pytest.approx([_manual_loglik(backend, model, tok, prompt, c) for c in opts], abs=1e-4)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_loglik_does_not_depend_on_batch_composition(tiny_model_dir, dtype):
    """A prompt's scores are the same alone, in a batch, and among other prompts in another order: bit for bit,
    in float32 as in bf16 (the results store computes only the missing items, so batches differ between runs)."""
    together = _backend(tiny_model_dir, 8, dtype)[0].loglik(PROMPTS, CHOICES)
    alone_backend = _backend(tiny_model_dir, 1, dtype)[0]
    alone = [alone_backend.loglik([p], [c])[0] for p, c in zip(PROMPTS, CHOICES)]
    reordered = _backend(tiny_model_dir, 2, dtype)[0].loglik(PROMPTS[::-1], CHOICES[::-1])[::-1]
    assert together == alone == reordered


SHARED = ["In which country is the city of Lyon?", "In which country is the city of Sao Paulo?",
          "In which country is the city of X?"]
SHARED_CHOICES = [["France", "Spain", "Germany"], ["Brazil", "Portugal"], ["y", "a very long answer indeed", "z"]]


def test_loglik_on_a_shared_prefix_matches_each_choice_scored_alone(tiny_model_dir):
    """With the text every prompt starts with cached once (data.build.shared_prefix), every score still equals
    context + choice run as one sequence; a prefix the tokens do not start with falls back to the chat prefix."""
    backend, model, tok = _backend(tiny_model_dir, batch_size=2)
    for shared in ("In which country is the city of", "In which country is the cit"):
        scores = backend.loglik(SHARED, SHARED_CHOICES, shared_prefix=shared)
        for prompt, opts, got in zip(SHARED, SHARED_CHOICES, scores):
            assert got == pytest.approx([_manual_loglik(backend, model, tok, prompt, c) for c in opts], abs=1e-4)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_loglik_on_a_shared_prefix_does_not_depend_on_batch_composition(tiny_model_dir, dtype):
    shared = "In which country is the city of"
    together = _backend(tiny_model_dir, 8, dtype)[0].loglik(SHARED, SHARED_CHOICES, shared)
    alone_backend = _backend(tiny_model_dir, 1, dtype)[0]
    alone = [alone_backend.loglik([p], [c], shared)[0] for p, c in zip(SHARED, SHARED_CHOICES)]
    reordered = _backend(tiny_model_dir, 2, dtype)[0].loglik(SHARED[::-1], SHARED_CHOICES[::-1], shared)[::-1]
    assert together == alone == reordered


def test_greedy_does_not_depend_on_batch_size(tiny_model_dir):
    prompts = [f"What is {a} + {b}?" + " please" * (a % 4) for a, b in [(1, 2), (30, 4), (55, 61), (7, 8), (9, 90)]]
    outs = {}
    for bs in (1, 2, 5):
        backend, _, _ = _backend(tiny_model_dir, bs)
        outs[bs] = [g.text for g in backend.generate(prompts, max_new_tokens=8)]
    assert outs[1] == outs[2] == outs[5]


def test_thinking_flag_reaches_the_template(tiny_model_dir):
    model, tok = load_model(ResolvedModel("tiny", str(tiny_model_dir), "x"))
    assert "<think>" in HFBackend(model, tok, enable_thinking=False).chat("hi")
    assert "<think>" not in HFBackend(model, tok).chat("hi")


def test_gumbel_sampler_draws_from_the_softmax():
    from driftlab.eval.hf_backend import GumbelSampler

    logits = torch.tensor([[0.0, 1.0, 2.0]]).repeat(4000, 1)
    picks = GumbelSampler(0.5, list(range(4000)), "cpu")(None, logits).argmax(-1)
    freq = torch.bincount(picks, minlength=3).float() / 4000
    expected = (logits[0] / 0.5).softmax(-1)
    assert torch.allclose(freq, expected, atol=0.03), (freq, expected)


def test_samples_do_not_depend_on_batch_size(tiny_model_dir):
    prompts = ["What is 3 + 4?", "Calculate 9 - 2 please please.", "Name a colour."]
    outs = {}
    for bs in (1, 4, 32):
        backend, _, _ = _backend(tiny_model_dir, bs)
        outs[bs] = [[g.text for g in gs] for gs in backend.sample(prompts, 6, n=3, temperature=1.0, seed=0)]
    assert outs[1] == outs[4] == outs[32]
    assert len({t for gs in outs[1] for t in gs}) > 3  # samples actually differ


def test_stop_strings_end_each_sequence_on_its_own(tiny_model_dir):
    import re

    backend, _, _ = _backend(tiny_model_dir, 8)
    prompts = ["What is 3 + 4?", "Name a colour."]
    free = [g for gs in backend.sample(prompts, 12, n=3, temperature=1.5, seed=0) for g in gs]
    found = [m for g in free for m in re.finditer(r"[A-Za-z]{3,}", g.text) if m.start() > 0]
    stop = min(found, key=lambda m: m.end()).group()  # the earliest: its row must stop well before the limit
    stopped = [g for gs in backend.sample(prompts, 12, n=3, temperature=1.5, seed=0, stop=[stop]) for g in gs]
    hit = [stop in f.text for f in free]
    assert any(hit) and not all(hit)  # some rows stop, the others run on
    assert any(s.n_tokens < f.n_tokens for f, s in zip(free, stopped))  # and stop before the token limit
    for f, s, h in zip(free, stopped, hit):
        if h:
            assert (s.text, s.finish) == (f.text[: f.text.index(stop)], "stop") and s.n_tokens <= f.n_tokens
        else:
            assert (s.text, s.n_tokens) == (f.text, f.n_tokens)


def test_frozen_model_scores_the_lm_head_with_one_matrix_multiply(tiny_model_dir):
    """A merged PEFT model has every weight frozen; torch.matmul then sends generation's strided last-position
    slice through bmm with the vocab x hidden weight copied once per row (2.5 s -> 1.2 s per batch of 32 on the
    embedded model once avoided). load_model's hook must keep the head on mm whatever requires_grad says."""
    from torch.profiler import ProfilerActivity, profile

    model, tok = load_model(ResolvedModel("tiny", str(tiny_model_dir), "x"), "float32")
    prompts = ["a", "What is 1 + 2?", "hello there", "b c"]
    reference = [g.text for g in HFBackend(model, tok, batch_size=4).generate(prompts, max_new_tokens=3)]
    model.requires_grad_(False)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        texts = [g.text for g in HFBackend(model, tok, batch_size=4).generate(prompts, max_new_tokens=3)]
    assert texts == reference
    vocab = model.config.vocab_size  # eager attention's own bmm calls are fine: none of them has the vocab in it
    head_bmm = [e.input_shapes for e in prof.events()
                if e.name == "aten::bmm" and any(vocab in shape for shape in e.input_shapes)]
    assert not head_bmm, "the LM head fell back to bmm over a copied weight"


def test_gqa_attention_computes_what_eager_attention_does(tiny_model_dir):
    """driftlab's CPU attention (query heads stacked per KV head, no copied cache) against transformers' eager
    attention on the same weights: logits on padded rows, and greedy replies."""
    from driftlab.eval.attention import NAME

    model, tok = load_model(ResolvedModel("tiny", str(tiny_model_dir), "x"), "float32", "cpu")  # a CPU kernel
    assert model.config._attn_implementation == NAME
    assert model.config.num_attention_heads != model.config.num_key_value_heads  # the grouped case is exercised
    backend = HFBackend(model, tok, batch_size=3)
    prompts = ["What is 12 + 34?", "Capital of France? Paris Berlin Rome", "x"]
    batch = backend._left_pad([tok(backend.chat(p), add_special_tokens=False).input_ids for p in prompts])
    with torch.no_grad():
        ours = model(**batch).logits
        replies = [g.text for g in backend.generate(prompts, max_new_tokens=6)]
        model.set_attn_implementation("eager")
        theirs = model(**batch).logits
    mask = batch["attention_mask"].bool()
    assert torch.allclose(ours[mask], theirs[mask], atol=1e-5)
    assert replies == [g.text for g in backend.generate(prompts, max_new_tokens=6)]


def test_generation_on_the_shared_prefix_cache_matches_full_prompts(tiny_model_dir, monkeypatch):
    """The chat prefix every prompt shares runs once as a cache; the replies (greedy and sampled) are those of the
    full prompts run from scratch."""
    backend, _, _ = _backend(tiny_model_dir, batch_size=3)
    prompts = ["What is 12 + 34?", "Capital of France?", "x", "Which word means hot?"]
    assert backend._chat_prefix()  # the tiny template has a prefix: the cached path runs
    cached = [g.text for g in backend.generate(prompts, max_new_tokens=8)]
    sampled = [[g.text for g in gs] for gs in backend.sample(prompts, 8, n=2, temperature=0.8, seed=3)]
    monkeypatch.setattr(backend, "_chat_prefix", lambda: [])
    assert cached == [g.text for g in backend.generate(prompts, max_new_tokens=8)]
    assert sampled == [[g.text for g in gs] for gs in backend.sample(prompts, 8, n=2, temperature=0.8, seed=3)]


def test_rows_leave_the_batch_when_they_stop_and_replies_equal_hf_generate(tiny_model_dir, monkeypatch):
    """driftlab's decode loop drops a stopped row from the batch; every reply must still be the one transformers'
    generate gives for the same batch (float32; sampled, as the random model's greedy replies are all alike),
    including rows that stop early and rows that run on."""
    from transformers import LogitsProcessorList

    import driftlab.eval.hf_backend as hb

    backend, model, tok = _backend(tiny_model_dir, 8)
    monkeypatch.setattr(backend, "_chat_prefix", lambda: [])  # generate's own layout: the full prompts
    prompts = ["What is 12 + 34?", "Capital of France?", "x", "Which word means hot? Think."]
    enc = [tok(backend.chat(p), add_special_tokens=False).input_ids for p in prompts for _ in range(2)]
    seeds = [hb.row_seed(0, backend.chat(p), j) for p in prompts for j in range(2)]
    order = sorted(range(len(enc)), key=lambda i: -len(enc[i]))
    batch = backend._left_pad([enc[i] for i in order])

    def hf_generate(eos):
        with torch.inference_mode():
            out = model.generate(**batch, max_new_tokens=10, do_sample=False, eos_token_id=eos,
                                 pad_token_id=tok.pad_token_id, top_p=None, top_k=None, temperature=None,
                                 logits_processor=LogitsProcessorList(
                                     [hb.GumbelSampler(1.5, [seeds[i] for i in order], model.device)]))
        return out[:, batch["input_ids"].shape[1]:].tolist()

    free = hf_generate([tok.pad_token_id])
    # an 'end of turn' the random model does write, early in one reply and nowhere in another
    end = next(t for r in free for t in r[1:6] if any(t not in other for other in free))
    monkeypatch.setattr(hb, "_stop_ids", lambda tokenizer, model: [end])
    ours = [g for gs in backend.sample(prompts, 10, n=2, temperature=1.5, seed=0) for g in gs]
    assert {g.finish for g in ours} == {"stop", "length"}  # some rows left the batch early, others ran on
    for i, row in zip(order, hf_generate([end])):
        ref = backend._decode(row, [end], 0.0)
        assert (ours[i].text, ours[i].n_tokens, ours[i].finish) == (ref.text, ref.n_tokens, ref.finish)


def test_generation_on_a_suites_shared_prompt_text_matches_full_prompts(tiny_model_dir, monkeypatch):
    """A suite's shared prompt text (a worked example) joins the chat prefix in the cache; greedy and sampled
    replies are those of the full prompts, and a prompt that does not start with it falls back to the chat prefix."""
    from driftlab.eval.hf_backend import _which_prefix

    backend, _, tok = _backend(tiny_model_dir, batch_size=3)
    shared = "Example: 3 + 5 = 8. Now add these numbers one at a time:"
    prompts = [f"{shared} {q}" for q in ("12 + 34", "5 + 6 + 7", "1 + 1", "40 + 2 + 3")] + ["Name a colour."]
    encoded = [tok(backend.chat(p), add_special_tokens=False).input_ids for p in prompts]
    assert _which_prefix(encoded, [backend._chat_prefix(shared), backend._chat_prefix()]) == [0, 0, 0, 0, 1]
    greedy = [g.text for g in backend.generate(prompts, 8, shared_prefix=shared)]
    sampled = [[g.text for g in gs] for gs in backend.sample(prompts, 8, n=2, temperature=0.8, seed=3,
                                                              shared_prefix=shared)]
    assert greedy == [g.text for g in backend.generate(prompts, 8)]
    assert sampled == [[g.text for g in gs] for gs in backend.sample(prompts, 8, n=2, temperature=0.8, seed=3)]
    monkeypatch.setattr(backend, "_chat_prefix", lambda user_start="": [])
    assert greedy == [g.text for g in backend.generate(prompts, 8, shared_prefix=shared)]


def test_a_cache_that_cannot_drop_rows_keeps_them_and_one_token_budgets_work(tiny_model_dir, monkeypatch):
    """Where the KV cache has no batch_select_indices the stopped rows stay in the batch (as generate keeps them)
    and the replies are the same; a budget of one token gives one token at most."""
    import re

    from transformers import DynamicCache

    backend, _, _ = _backend(tiny_model_dir, 8)
    prompts = ["What is 3 + 4?", "Name a colour.", "x"]
    sample = lambda n, stop=None: [(g.text, g.n_tokens, g.finish) for gs in backend.sample(
        prompts, n, n=3, temperature=1.5, seed=0, stop=stop) for g in gs]
    free = sample(12)
    found = [m for text, _, _ in free for m in re.finditer(r"[A-Za-z]{3,}", text) if m.start() > 0]
    stop = [min(found, key=lambda m: m.end()).group()]
    dropping = sample(12, stop)
    assert {f for _, _, f in dropping} == {"stop", "length"}  # rows left the batch while others ran on
    owner = next(k for k in DynamicCache.__mro__ if "batch_select_indices" in vars(k))
    monkeypatch.delattr(owner, "batch_select_indices")
    assert sample(12, stop) == dropping
    assert all(n <= 1 for _, n, _ in sample(1))
