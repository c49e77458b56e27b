"""Slot decoding (eval/slots.py): fixed slots on transformers' static KV cache, refilled as rows stop, must give
every row the reply the dynamic decoder gives it (float32), while rows actually leave, join and get compacted."""

from collections import Counter

import pytest
import torch

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


def _eager_compile(monkeypatch):
    """transformers' CompileConfig with dynamo's eager backend: traced, not built (quick on a CPU; on a GPU the
    default adds inductor and CUDA graphs), fullgraph so that a graph break fails."""
    from transformers import CompileConfig

    monkeypatch.setattr("transformers.CompileConfig",
                        lambda **kw: CompileConfig(**{**kw, "fullgraph": True, "backend": "eager", "mode": None}))


def test_compiled_step_traces_as_one_graph(tiny, monkeypatch):
    """The decode step compiles to one static graph per cache length, without a graph break, gives the same
    replies, and is not compiled again for another request in the same length bucket."""
    from torch._dynamo.utils import counters

    model, tok = tiny
    _eager_compile(monkeypatch)
    compiled = HFBackend(model, tok, batch_size=3, decoding="static", compiled=True)
    counters.clear()
    replies = [(g.text, g.n_tokens) for g in _sample(compiled)]
    assert counters["stats"]["unique_graphs"] == 1  # the step did run through dynamo, as one graph
    assert replies == [(g.text, g.n_tokens) for g in _sample(HFBackend(model, tok, batch_size=3, decoding="static"))]
    compiled.sample(PROMPTS[:5], 30, n=1, temperature=1.0, seed=5)  # other rows, a shorter budget: same bucket
    assert counters["stats"]["unique_graphs"] == 1 and not counters["recompiles"]
    model.__dict__.pop("_compiled_call", None)  # the module-scoped model goes on uncompiled


@pytest.mark.skipif(not torch.cuda.is_available(), reason="inductor's CUDA graphs need a CUDA GPU")
def test_the_real_compiled_step_on_a_gpu_gives_the_uncompiled_replies(tiny, calls):
    """On a GPU, the step as eval.compile: auto builds it (inductor, CUDA graphs recorded on the static cache's
    addresses) while rows join, stop and are compacted in place between replays: the replies are the uncompiled
    slots' (a replay that wrote its keys anywhere but the cache would lose every row's context after its first
    token). Float32; a reply may differ where two tokens tie within the kernels' rounding."""
    model, tok = tiny
    eager = _sample(HFBackend(model, tok, batch_size=3, decoding="static"))
    compiled = _sample(HFBackend(model, tok, batch_size=3, decoding="static", compiled=True))
    same = sum((a.text, a.n_tokens) == (b.text, b.n_tokens) for a, b in zip(compiled, eager))
    assert same >= 0.9 * len(eager), f"{same} of {len(eager)} replies alike"
    assert calls["_admit"] >= 3 and calls["_compact"] >= 1
    model.__dict__.pop("_compiled_call", None)  # the module-scoped model goes on uncompiled


def test_idle_slots_sit_at_position_zero(tiny, monkeypatch):
    """A compiled run keeps all its slots: with fewer rows than slots, and as rows stop, the idle slots feed
    position 0 (a RoPE scaled by the batch's largest position must see the rows' positions only)."""
    model, tok = tiny
    _eager_compile(monkeypatch)
    backend = HFBackend(model, tok, batch_size=6, decoding="static", compiled=True)
    seen = []
    step = backend.slots.step_fn

    def recording(**inputs):
        seen.append(inputs["position_ids"][:, 0].tolist())
        return step(**inputs)

    backend.slots.step_fn = recording
    replies = backend.sample(PROMPTS[:2], 30, n=2, temperature=1.5, seed=3, stop=["a"])  # 4 rows on 6 slots
    assert all(pos[4:] == [0, 0] for pos in seen)  # never filled
    assert sum(g.n_tokens for gs in replies for g in gs) > 0
    final = seen[-1]  # the last step decodes the last live row only
    assert sum(1 for x in final[:4] if x) == 1
    model.__dict__.pop("_compiled_call", None)


def test_a_model_without_grouped_query_attention_fields(tmp_path):
    """A GPT-2 config names no key/value heads: the static cache is sized from its attention heads."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from tests.conftest import build_tiny_model

    tok = load_model(ResolvedModel("tiny", str(build_tiny_model(tmp_path / "qwen")), "x"), "float32")[1]
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=256,
                        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None)
    model = GPT2LMHeadModel(config).eval()
    model.generation_config.eos_token_id = tok.eos_token_id
    static = _sample(HFBackend(model, tok, batch_size=3, decoding="static"))
    dynamic = _sample(HFBackend(model, tok, batch_size=4))
    assert [(g.text, g.n_tokens) for g in static] == [(g.text, g.n_tokens) for g in dynamic]


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
    caches = dict(backend.slots._caches)
    assert len(caches) == 1
    backend.sample(PROMPTS[::-1], 40, n=2, temperature=1.0, seed=9, stop=["e"])  # other rows through the slots
    assert [(g.text, g.n_tokens) for g in _sample(backend)] == [(g.text, g.n_tokens) for g in first]
    assert backend.slots._caches == caches  # it was reused, not rebuilt (same objects, no other shape)


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
