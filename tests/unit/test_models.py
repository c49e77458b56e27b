import pytest

from driftlab.errors import ModelError
from driftlab.models import fingerprint_dir, resolve_model


def test_missing_local_dir_is_a_clear_error():
    with pytest.raises(ModelError, match="is not an existing directory"):
        resolve_model("./no/such/checkpoint")


def test_uncached_hub_id_fails_before_anything_runs(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelError, match="not in the local HF cache"):
        resolve_model("driftlab-test/definitely-not-cached")


def test_local_dir_fingerprint_tracks_weights(tmp_path, tiny_model_dir):
    resolved = resolve_model(str(tiny_model_dir))
    assert resolved.fingerprint == fingerprint_dir(tiny_model_dir)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"other weights")
    assert resolve_model(str(tmp_path)).fingerprint != resolved.fingerprint


def test_inference_dtype_is_bf16_only_where_the_hardware_has_it(monkeypatch):
    import torch

    from driftlab import models

    monkeypatch.setattr(models, "has_bf16", lambda device: True)
    assert models.inference_dtype("auto", "cpu") == torch.bfloat16
    assert models.pick_dtype("auto", "cpu") == torch.float32  # training keeps float32 master weights on CPU
    assert models.inference_dtype("float32", "cpu") == torch.float32  # an explicit choice wins
    monkeypatch.setattr(models, "has_bf16", lambda device: False)
    assert models.inference_dtype("auto", "cpu") == torch.float32
