"""Slot decoding (eval/slots.py): fixed slots on transformers' static KV cache, refilled as rows stop, must give
every row the reply the dynamic decoder gives it (float32), while rows actually leave, join and get compacted."""

from collections import Counter

import pytest

from driftlab.eval import slots as slots_module
from driftlab.eval.hf_backend import HFBackend
from driftlab.models import ResolvedModel, load_model

PROMPTS = ["What is 12 + 34?", "Capital of France?", "Which word means the opposite of 'cold'? Think.", "x",
           "In which country is Lyon?", "What is 1 + 1? Answer:", "Calculate 57 - 19."] * 2


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(ResolvedModel("tiny", str(tiny_model_dir), "x"), "float32")


@pytest.fixture
def calls(monkeypatch):
    """How often the slot decoder admitted rows while other rows were decoding (refill), and compacted its cache."""
    seen = Counter()
    for name in ("_admit", "_compact"):
        original = getattr(slots_module.SlotDecoder, name)

        def spy(self, *args, _name=name, _original=original):
            row_of = args[10] if _name == "_admit" else args[3]
            if _name == "_compact" or any(r is not None for r in row_of):
                seen[_name] += 1
            return _original(self, *args)

        monkeypatch.setattr(slots_module.SlotDecoder, name, spy)
    return seen


def _sample(backend, stop=("a",)):
    """Sampled replies (the random model's greedy replies are all alike) that stop at varied lengths."""
    return [g for gs in backend.sample(PROMPTS, 40, n=2, temperature=1.5, seed=3, stop=list(stop)) for g in gs]


@pytest.mark.parametrize("slots", [2, 3, 5])
def test_slot_decoding_gives_the_dynamic_decoders_replies(tiny, calls, slots):
    model, tok = tiny
    dynamic = _sample(HFBackend(model, tok, batch_size=4))
    lengths = {g.n_tokens for g in dynamic}
    assert len(lengths) > 5 and 40 in lengths  # rows stop at many lengths, some run to the limit
    static = _sample(HFBackend(model, tok, batch_size=slots, decoding="static"))
    assert [(g.text, g.n_tokens, g.finish) for g in static] == [(g.text, g.n_tokens, g.finish) for g in dynamic]
    assert calls["_admit"] >= 3  # rows joined while others were decoding
    assert calls["_compact"] >= 1  # and the cache ran out of columns and was compacted


def test_slot_decoding_greedy_and_raw_completion(tiny):
    model, tok = tiny
    dynamic, static = HFBackend(model, tok, batch_size=4), HFBackend(model, tok, batch_size=2, decoding="static")
    assert [g.text for g in static.generate(PROMPTS, 12)] == [g.text for g in dynamic.generate(PROMPTS, 12)]
    texts = [dynamic.chat(p) + "Answer:" for p in PROMPTS[:5]]
    assert ([(g.text, g.n_tokens) for g in static.complete(texts, 10)]
            == [(g.text, g.n_tokens) for g in dynamic.complete(texts, 10)])


def test_slot_decoding_on_a_shared_prefix(tiny):
    model, tok = tiny
    prompts = ["In which country is the city of Lyon?", "In which country is the city of Sao Paulo?",
               "In which country is the city of X?", "Capital of France?"]
    shared = "In which country is the city of"
    dynamic = HFBackend(model, tok, batch_size=4).sample(prompts, 20, n=3, temperature=1.5, seed=1,
                                                         shared_prefix=shared)
    static = HFBackend(model, tok, batch_size=2, decoding="static").sample(prompts, 20, n=3, temperature=1.5,
                                                                            seed=1, shared_prefix=shared)
    assert [[g.text for g in gs] for gs in static] == [[g.text for g in gs] for gs in dynamic]


def test_compiled_step_traces_as_one_graph(tiny, monkeypatch):
    """The decode step compiles without a graph break (fullgraph; the eager backend keeps the test quick — on a GPU
    transformers' default config adds inductor and CUDA graphs) and gives the same replies."""
    from transformers import CompileConfig

    model, tok = tiny
    monkeypatch.setattr("transformers.CompileConfig", lambda: CompileConfig(fullgraph=True, backend="eager",
                                                                            mode=None))
    from torch._dynamo.utils import counters

    compiled = HFBackend(model, tok, batch_size=3, decoding="static", compiled=True)
    counters.clear()
    replies = [(g.text, g.n_tokens) for g in _sample(compiled)]
    assert counters["stats"]["unique_graphs"] >= 1  # the step did run through dynamo
    assert replies == [(g.text, g.n_tokens) for g in _sample(HFBackend(model, tok, batch_size=3, decoding="static"))]
    model.__dict__.pop("_compiled_call", None)  # the module-scoped model goes on uncompiled


def test_sliding_window_caches_are_refused():
    from transformers import Qwen3Config

    from driftlab.eval.slots import static_cache_supported

    plain = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=1, head_dim=16)
    assert static_cache_supported(Qwen3Config(**plain))
    assert not static_cache_supported(Qwen3Config(**plain, use_sliding_window=True, sliding_window=8,
                                                  max_window_layers=0))


def test_a_reused_cache_gives_the_same_replies(tiny):
    """The static cache is kept between requests of one shape (a compiled step is recorded on its addresses); what
    an earlier request left in it must not move a later reply."""
    model, tok = tiny
    backend = HFBackend(model, tok, batch_size=3, decoding="static")
    first = _sample(backend)
    cache = backend.slots._cache
    backend.sample(PROMPTS[::-1], 40, n=2, temperature=1.0, seed=9, stop=["e"])  # other rows through the slots
    assert [(g.text, g.n_tokens) for g in _sample(backend)] == [(g.text, g.n_tokens) for g in first]
    assert backend.slots._cache is cache  # it was reused, not rebuilt


def test_a_failing_compiled_step_names_the_setting(tiny):
    from driftlab.errors import DriftlabError

    model, tok = tiny
    backend = HFBackend(model, tok, batch_size=2, decoding="static")

    def broken(**inputs):
        raise RuntimeError("inductor: no C++ compiler")

    backend.slots.step_fn = broken
    with pytest.raises(DriftlabError, match="eval.compile: off"):
        backend.generate(PROMPTS[:3], 5)


def test_progress_advances_row_by_row(tiny):
    model, tok = tiny
    ticks = []
    backend = HFBackend(model, tok, batch_size=2, decoding="static", on_progress=ticks.append)
    backend.sample(PROMPTS[:4], 10, n=2, temperature=1.5, seed=3, stop=["a"])
    assert ticks == [1] * 8
