"""The results store: reuse, invalidation by model fingerprint, resume after a kill."""

import pytest

from driftlab.eval.backend import Generation
from driftlab.eval.store import CachedBackend, ResultStore


class CountingBackend:
    def __init__(self, fail_after: int | None = None):
        self.generated, self.scored, self.fail_after = [], [], fail_after

    def chat(self, prompt):
        return f"<user>{prompt}<assistant>"

    def generate(self, prompts, max_new_tokens, stop=None, shared_prefix=""):
        if self.fail_after is not None and len(self.generated) >= self.fail_after:
            raise KeyboardInterrupt  # a kill in the middle of a suite
        self.generated += prompts
        return [Generation(f"out:{p}", 2, "stop", 0.1) for p in prompts]

    def loglik(self, prompts, choices, shared_prefix=""):
        self.scored += prompts
        return [[float(len(c)) for c in cs] for cs in choices]


def test_second_run_computes_nothing(tmp_path):
    prompts = [f"q{i}" for i in range(7)]
    store = ResultStore(tmp_path / "r.sqlite")
    first = CachedBackend(CountingBackend(), store, "fp", batch_size=3, log=lambda m: None)
    out1 = first.generate(prompts, 8)
    inner = CountingBackend()
    second = CachedBackend(inner, store, "fp", batch_size=3, log=lambda m: None)
    out2 = second.generate(prompts, 8)
    assert inner.generated == [] and second.hits == 7
    assert [g.text for g in out1] == [g.text for g in out2] and all(g.cached for g in out2)


def test_other_adapter_or_params_never_reuse(tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    CachedBackend(CountingBackend(), store, "base:adapterA", 4, log=lambda m: None).generate(["q"], 8)
    inner = CountingBackend()
    CachedBackend(inner, store, "base:adapterB", 4, log=lambda m: None).generate(["q"], 8)
    CachedBackend(inner, store, "base:adapterA", 4, log=lambda m: None).generate(["q"], 16)
    assert inner.generated == ["q", "q"]


def test_killed_eval_resumes_with_only_the_missing_items(tmp_path):
    prompts = [f"q{i}" for i in range(10)]
    store = ResultStore(tmp_path / "r.sqlite")
    with pytest.raises(KeyboardInterrupt):
        CachedBackend(CountingBackend(fail_after=4), store, "fp", batch_size=4, log=lambda m: None).generate(prompts, 8)
    messages = []
    inner = CountingBackend()
    resumed = CachedBackend(inner, ResultStore(tmp_path / "r.sqlite"), "fp", batch_size=4, log=messages.append)
    out = resumed.generate(prompts, 8)
    assert sorted(inner.generated) == sorted(prompts[4:])  # the first batch survived the kill
    assert messages == ["results store: 4 cached, 6 to compute"]
    assert [g.text for g in out] == [f"out:{p}" for p in prompts]


def test_loglik_is_cached_per_choice_set(tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    CachedBackend(CountingBackend(), store, "fp", 4, log=lambda m: None).loglik(["q", "q"], [["a", "bb"], ["a", "c"]])
    inner = CountingBackend()
    backend = CachedBackend(inner, store, "fp", 4, log=lambda m: None)
    assert backend.loglik(["q", "q"], [["a", "bb"], ["a", "c"]]) == [[1.0, 2.0], [1.0, 1.0]]
    assert inner.scored == []
    assert backend.loglik(["q", "q"], [["a", "bb"], ["a", "ccc"]]) == [[1.0, 2.0], [1.0, 3.0]]
    assert inner.scored == ["q", "q"]


class BatchDependentBackend(CountingBackend):
    """Every reply carries a digest of its whole batch, as bf16 or float32 batched arithmetic may."""

    def generate(self, prompts, max_new_tokens, stop=None, shared_prefix=""):
        self.generated.append(list(prompts))
        mates = str(hash(tuple(prompts)) % 997)
        return [Generation(f"out:{p}:{mates}", 2, "stop", 0.1) for p in prompts]


def test_a_result_does_not_depend_on_what_the_store_holds(tmp_path):
    """The same prompts evaluated without a store, with an empty one, with one a killed run half filled, and with
    one whose rows were deleted here and there: every reply the same, although each depends on its batch."""
    prompts = [f"question {'x' * (i % 5)}{i}" for i in range(23)]

    def run(store, inner=None):
        return [g.text for g in CachedBackend(inner or BatchDependentBackend(), store, "fp", 4,
                                              log=lambda m: None).generate(prompts, 8)]

    bare = run(None)
    assert len(set(t.split(":")[-1] for t in bare)) > 1  # replies do depend on their batch
    assert run(ResultStore(tmp_path / "empty.sqlite")) == bare

    killed = ResultStore(tmp_path / "killed.sqlite")
    failing = BatchDependentBackend()
    failing.fail_after, failing.generate = 2, _failing(failing.generate, 2)
    with pytest.raises(KeyboardInterrupt):
        run(killed, failing)
    inner = BatchDependentBackend()
    assert run(killed, inner) == bare
    assert sum(map(len, inner.generated)) == len(prompts) - 8  # two whole chunks survived the kill

    holey = ResultStore(tmp_path / "holey.sqlite")
    run(holey)
    holey.db.execute("DELETE FROM results WHERE rowid % 3 = 0")
    holey.db.commit()
    inner = BatchDependentBackend()
    assert run(holey, inner) == bare
    assert all(len(batch) == 4 or batch == inner.generated[-1] for batch in inner.generated)  # chunks recomputed whole


def _failing(generate, after):
    calls = []

    def wrapped(*args, **kwargs):
        if len(calls) >= after:
            raise KeyboardInterrupt
        calls.append(1)
        return generate(*args, **kwargs)

    return wrapped


def test_a_scaled_fine_tune_has_its_own_fingerprint(tmp_path):
    """The sweep evaluates a fine-tune at scale α in memory; its results must never be taken for the fine-tune's own
    (α = 1) or another α's."""
    from driftlab.config import EvalConfig, ModelConfig
    from driftlab.eval.open import result_fingerprint
    from driftlab.models import ModelUnderTest, ResolvedModel

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    base = ModelUnderTest(ResolvedModel("m", str(tmp_path), "basefp"), ModelConfig())
    fps = [result_fingerprint(base.tuned(adapter, scale), EvalConfig()) for scale in (1.0, 0.5, 0.25, 0.0)]
    assert len(set(fps)) == 4 and fps[0] == result_fingerprint(base.tuned(adapter), EvalConfig())
    assert result_fingerprint(base, EvalConfig()) not in fps


def test_generation_chunks_hold_the_refill_queue(tmp_path):
    """With slot decoding the store hands the backend chunks of several batches (the queue that refills the
    slots), still a function of the items alone; loglik keeps its own chunking."""
    calls = []

    class Recording(CountingBackend):
        def generate(self, prompts, *args, **kwargs):
            calls.append(len(prompts))
            return super().generate(prompts, *args, **kwargs)

    prompts = [f"q{i}" for i in range(30)]
    for store in (None, ResultStore(tmp_path / "r.sqlite")):
        calls.clear()
        CachedBackend(Recording(), store, "fp", batch_size=3, log=lambda m: None, refill_batches=4).generate(prompts, 8)
        assert calls == [12, 12, 6]


def test_decoding_mode_is_resolved_and_keys_the_store(tiny_model_dir, monkeypatch):
    """auto: dynamic batches on the CPU, static slots compiled on a GPU; an explicit choice holds on either; the
    two never share stored results; compiling the dynamic path is refused by its config key."""
    from driftlab.config import EvalConfig, ModelConfig
    from driftlab.errors import ConfigError
    from driftlab.eval import open as open_module
    from driftlab.models import ModelUnderTest, ResolvedModel

    model = ModelUnderTest(ResolvedModel("tiny", str(tiny_model_dir), "fp"), ModelConfig(device="cpu"))
    assert open_module.hf_decoding(model, EvalConfig()) == ("dynamic", False)
    assert open_module.hf_decoding(model, EvalConfig(decoding="static")) == ("static", False)
    assert open_module.hf_decoding(model, EvalConfig(decoding="static", compile="on")) == ("static", True)
    with pytest.raises(ConfigError, match="eval.compile"):
        open_module.hf_decoding(model, EvalConfig(compile="on"))
    fps = {open_module.result_fingerprint(model, EvalConfig(decoding=d, compile=c))
           for d, c in (("dynamic", "off"), ("static", "off"), ("static", "on"))}
    assert len(fps) == 3
    assert open_module.result_fingerprint(model, EvalConfig()) == open_module.result_fingerprint(
        model, EvalConfig(decoding="dynamic"))  # auto on the CPU keeps the stored results of before
    calls = []
    resolve = open_module.hf_decoding
    monkeypatch.setattr(open_module, "hf_decoding", lambda *a: calls.append(1) or resolve(*a))
    with open_module.open_backend(model, EvalConfig(cache=False, decoding="static")) as backend:
        assert backend.refill == 4 and backend.fingerprint.endswith("+static")
        assert backend.inner.loaded.slots is not None  # the backend decodes as the key says
    assert len(calls) == 1  # resolved once: key, chunking and backend cannot disagree
    monkeypatch.setattr(open_module, "hf_decoding", resolve)
    monkeypatch.setattr(open_module, "pick_device", lambda device: "cuda")
    assert open_module.hf_decoding(model, EvalConfig()) == ("static", True)
    assert open_module.hf_decoding(model, EvalConfig(compile="off")) == ("static", False)
    assert open_module.hf_decoding(model, EvalConfig(decoding="dynamic")) == ("dynamic", False)
