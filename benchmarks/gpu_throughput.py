"""GPU benchmark: the Qwen3-4B architecture with random weights (throughput and memory do not depend on the weights,
and no weights can be carried to the GPU machine), bf16, LoRA r16 on all linear layers, sequence length 1024.

Training: `driftlab train` (its defaults; its memory-saving setting train.gradient_checkpointing: true; and that
with train.offload_activations: true, the checkpointed layer inputs held in CPU memory) against
TRL's `SFTTrainer` at its defaults and at the best configuration measured on an H200 (checkpointing off + Liger,
issue 21), the same random checkpoint, data, LoRA, batch and steps, each in its own process: tokens/s over the
whole run (wall, warm-up included) and in the steady state (steps after --warmup, from each step's end time and
tokens seen), the settings each side ran with, peak VRAM (torch.cuda.max_memory_allocated) and MFU (steady) =
model FLOPs per token × tokens/s ÷ the H100's dense bf16 peak (989 TFLOP/s). Model FLOPs of a LoRA step per token:
forward 2·N + attention 4·L·T·d, backward twice that minus the frozen weights' gradients (2·N), i.e. 4·N + 12·L·T·d
(recomputation under gradient checkpointing is not counted: it is overhead, not model work; N includes the LM head,
which both runs score only at completion positions — the same model-FLOPs convention as train_throughput).
Also driftlab's default with the whole batch in one pass (train.micro_batch = the batch: what the plan's split into
micro-batches costs in tokens/s and spares in VRAM; the plan's rule that ~2,000 tokens of a 4B model keep the GPU
busy is an assumption this run tests); and the memory-saving setting at one row a pass (train.micro_batch: 1):
at its default, 2 rows, the estimate (~8.6 GiB, and 3.6-6.6% under the H200's four peaks: train/memory.py) puts it at
8.9-9.2 GiB against the target's 9.03, so this run says what one row (~8.3 GiB estimated) spares and costs.
Evaluation: driftlab's HF backend on static slots compiled (eval.decoding's GPU default) and on dynamic batches, at
batch 64 and with every prompt in one batch, against its vLLM backend (when vLLM is installed), on the same prompts,
greedy, same max new tokens: items/s and generated tokens/s. The runs of issue 21's targets go first, the diagnosis
runs after, each in its own process and time limit (--train-limit-s, --eval-limit-s); the result file is written
after every run.

    python benchmarks/gpu_throughput.py                 # on a CUDA machine (about 10 min on an H100)
    python benchmarks/gpu_throughput.py --tiny --steps 2  # anywhere: a 2-layer model, checks the script runs

`--tiny` measures nothing worth reporting; its result is written to gpu_throughput_tiny.json, never to the table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, run_child, save  # noqa: E402

H100_BF16_PEAK = 989e12
# Qwen3-4B (config.json of Qwen/Qwen3-4B): the architecture whose throughput and memory are measured.
QWEN3_4B = dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
                num_key_value_heads=8, head_dim=128, vocab_size=151936, max_position_embeddings=40960,
                rope_theta=1_000_000, rms_norm_eps=1e-6, tie_word_embeddings=True)
TINY = dict(QWEN3_4B, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16, vocab_size=49152)


def build_model(out: Path, tiny: bool, tokenizer: Path | None = None) -> Path:
    """A random-weight checkpoint of the architecture, with the embedded model's tokenizer (its ids fit the vocab),
    or the tokenizer files in `tokenizer` (a GPU machine gets those alone: the embedded model is too large to carry)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen3Config

    from driftlab.models import resolve_model

    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(Qwen3Config(**(TINY if tiny else QWEN3_4B)), dtype=torch.bfloat16)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tokenizer or resolve_model("embedded").path).save_pretrained(out)
    return out


def items(n: int, seq_len: int, model_dir: Path) -> list[dict]:
    """n training items of seq_len tokens once chat-templated: a long context, a question, a short answer
    (completion-only loss scores the answer, as in the default study)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    words = " ".join(f"w{i % 97}" for i in range(seq_len))
    filler = tok.decode(tok(words, add_special_tokens=False).input_ids[: seq_len - 48])  # room for template + Q/A
    rows = []
    for i in range(n):
        prompt = f"{filler}\nWhat is {i} + {i + 7}?"
        rows.append({"id": f"g{i}", "question": prompt, "answer": str(2 * i + 7), "prompt": prompt,
                     "completion": f"Answer: {2 * i + 7}"})
    return rows


RUNS = ("driftlab", "driftlab_low_memory", "driftlab_offload", "trl_defaults", "trl_best")
# diagnosis runs (--runs): the default plan with Liger's kernels off; the plan under train.gpu_memory_gib = --cap-gib;
# the default with the whole batch in one pass (train.micro_batch = the batch); the memory-saving setting at one row a
# pass (train.micro_batch = 1). The full benchmark runs the last two after the target runs.
EXTRA = ("driftlab_no_liger", "driftlab_capped", "driftlab_whole_batch", "driftlab_low_memory_1row")


def steady_tokens_per_s(marks: list[tuple[int, float, int]], warmup: int) -> float | None:
    """(step, end time, tokens seen) per step -> tokens/s from the end of step `warmup` to the last step."""
    first = next((m for m in marks if m[0] == warmup), None)
    last = marks[-1] if marks else None
    if first is None or last is None or last[0] <= warmup or last[1] <= first[1]:
        return None
    return (last[2] - first[2]) / (last[1] - first[1])


def train_one(name: str, model_dir: Path, steps: int, batch: int, seq_len: int, warmup: int,
              cap_gib: float | None = None) -> dict:
    import torch

    from driftlab.config import ModelConfig, TrainConfig
    from driftlab.models import ModelUnderTest, ResolvedModel, fingerprint_dir
    from driftlab.train.sft import train_model

    data = items(steps * batch, seq_len, model_dir)
    out = Path(tempfile.mkdtemp(prefix=f"gpu-{name}-"))
    cfg = TrainConfig(method="lora", lora_r=16, lora_alpha=32, target_modules="all-linear", batch_size=batch,
                      max_steps=steps, save_steps=10**6, report_to=[], cache=False, max_length=seq_len + 64,
                      warmup_ratio=0.0)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    if name.startswith("driftlab"):
        if name == "driftlab_no_liger":
            cfg = cfg.model_copy(update={"liger": False})
        if name == "driftlab_whole_batch":
            cfg = cfg.model_copy(update={"micro_batch": batch})
        if name == "driftlab_low_memory_1row":
            cfg = cfg.model_copy(update={"gradient_checkpointing": True, "micro_batch": 1})
        if name == "driftlab_capped":  # within a memory cap: no recompute if a pass fits, else the fewest layers
            cfg = cfg.model_copy(update={"gpu_memory_gib": cap_gib})
        if name in ("driftlab_low_memory", "driftlab_offload"):
            cfg = cfg.model_copy(update={"gradient_checkpointing": True,
                                         "offload_activations": name == "driftlab_offload"})
        s = train_model(ModelUnderTest(ResolvedModel("qwen3-4b-random", str(model_dir), fingerprint_dir(model_dir)),
                                       ModelConfig()), cfg, data, out, seed=0)
        tokens, wall = s["tokens"], s["wall_s"]
        settings = {k: s.get(k) for k in ("gradient_checkpointing", "checkpointed_layers", "micro_batch", "liger",
                                          "padding_free", "attention", "offload_activations")}
        settings["gpu_memory_gib"], settings["plan"] = cfg.gpu_memory_gib, s.get("gpu_plan")
        rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
        marks = [(r["step"], r["time"], r["tokens_seen"]) for r in rows if "loss" in r]
    else:  # TRL at its defaults, or its best configuration seen; the same LoRA, batch, steps and data
        from datasets import Dataset
        from peft import LoraConfig
        from transformers import TrainerCallback
        from trl import SFTConfig, SFTTrainer

        from driftlab.train.sft import to_conversation

        best = {"gradient_checkpointing": False, "use_liger_kernel": _importable("liger_kernel")}
        args = SFTConfig(output_dir=str(out), max_steps=steps, per_device_train_batch_size=batch, logging_steps=1,
                         save_strategy="no", report_to=[], max_length=seq_len + 64, seed=0, disable_tqdm=True,
                         include_num_input_tokens_seen="non_padding", use_cpu=not torch.cuda.is_available(),
                         **(best if name == "trl_best" else {}))
        lora = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
        marks = []

        class Marks(TrainerCallback):  # stamped where driftlab's log stamps its rows: on_log, after the loss sync
            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "loss" in logs:
                    marks.append((state.global_step, time.time(), state.num_input_tokens_seen))

        trainer = SFTTrainer(model=str(model_dir), args=args, peft_config=lora, callbacks=[Marks()],
                             train_dataset=Dataset.from_list([to_conversation(it) for it in data]))
        t0 = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - t0
        tokens = trainer.state.num_input_tokens_seen
        settings = {"gradient_checkpointing": bool(args.activation_checkpointing),
                    "micro_batch": args.per_device_train_batch_size, "liger": bool(args.use_liger_kernel),
                    "padding_free": bool(args.padding_free), "attention": "model default"}
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    steady = steady_tokens_per_s(marks, warmup)
    return {"run": name, "tokens": int(tokens), "wall_s": round(wall, 2), "tokens_per_s": round(tokens / wall, 1),
            "steady_tokens_per_s": round(steady, 1) if steady else None, "steady_from_step": warmup,
            "peak_vram_gib": round(peak, 2) if peak is not None else None, "settings": settings}


def eval_one(name: str, model_dir: Path, n: int, max_new_tokens: int, batch_size: int = 64,
             decoding: str = "dynamic") -> dict:
    """One eval backend's generation: HF with dynamic batches (driftlab's CPU path, and the GPU's before
    eval.decoding existed), HF with static slots compiled (the GPU default: eval/slots.py), or vLLM."""
    from driftlab.eval.hf_backend import HFBackend
    from driftlab.models import ResolvedModel, load_model

    prompts = [f"Question {i}: what is {i} + {i + 7}? Explain step by step." for i in range(n)]
    if name.startswith("hf"):
        static = decoding == "static"
        backend = HFBackend(*load_model(ResolvedModel("qwen3-4b-random", str(model_dir), "x"), "bfloat16"),
                            batch_size=batch_size, decoding=decoding, compiled=static and _cuda())
        # warm-up outside the timer: kernels; for the compiled step the shape of the timed run (all slots, the cache
        # length of its longest prompts), so the compile and the CUDA graph capture are not timed
        longest = sorted(prompts, key=len, reverse=True)[:batch_size]
        backend.generate(longest if static else prompts[:4], max_new_tokens if static else 8)
    else:
        from driftlab.eval.vllm_backend import VLLMBackend

        backend = VLLMBackend(str(model_dir), "bfloat16")
        backend.generate(prompts[:4], 8)
    t0 = time.perf_counter()
    out = backend.generate(prompts, max_new_tokens)
    wall = time.perf_counter() - t0
    return {"run": name, "batch_size": batch_size, "decoding": decoding if name.startswith("hf") else "vllm",
            "items": n, "wall_s": round(wall, 2), "items_per_s": round(n / wall, 2),
            "generated_tokens_per_s": round(sum(g.n_tokens for g in out) / wall, 1)}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def lora_flops_per_token(cfg: dict, seq_len: int) -> float:
    h, f, layers, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    q, kv = cfg["num_attention_heads"] * cfg["head_dim"], cfg["num_key_value_heads"] * cfg["head_dim"]
    n = layers * (h * (q + 2 * kv) + q * h + 3 * h * f) + v * h  # matmul weights incl. the (tied) LM head
    return 4 * n + 12 * layers * seq_len * q


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="2-layer model: a smoke test of the script, not a measurement")
    p.add_argument("--steps", type=int, default=24)
    p.add_argument("--warmup", type=int, default=8, help="steps before the steady state (compilation, allocator)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--eval-items", type=int, default=256)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--tokenizer", type=Path, help="tokenizer files to use (default: the embedded model's)")
    p.add_argument("--runs", help=f"comma-separated training runs to time in this order, repeats allowed (of "
                   f"{', '.join(RUNS + EXTRA)}); no eval; written to gpu_throughput_diagnosis.json after each run")
    p.add_argument("--note", help="why a --runs diagnosis was run (kept in its result)")
    p.add_argument("--cap-gib", type=float, default=18.06, help="driftlab_capped's train.gpu_memory_gib in --runs "
                   "(default: TRL defaults' peak at 24805cc)")
    p.add_argument("--train-limit-s", type=int, default=600, help="each training run's time limit (s): a run past it "
                   "is recorded as stopped and the others go on")
    p.add_argument("--eval-limit-s", type=int, default=900, help="each eval run's time limit (s), likewise")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        kind, name, *batch = args.one.split(":")
        result = (train_one(name, args.model_dir, args.steps, args.batch, args.seq_len, args.warmup, args.cap_gib)
                  if kind == "train"
                  else eval_one(name, args.model_dir, args.eval_items, args.max_new_tokens,
                                *[int(b) if b.isdigit() else b for b in batch]))
        print("\n" + json.dumps(result))
        return

    import torch

    command = " ".join(["python", "benchmarks/gpu_throughput.py", *sys.argv[1:]])
    if args.runs and (bad := set(args.runs.split(",")) - set(RUNS + EXTRA)):
        sys.exit(f"gpu_throughput: unknown run(s) {', '.join(sorted(bad))}; runs: {', '.join(RUNS + EXTRA)}")
    if not torch.cuda.is_available() and not args.tiny:
        sys.exit("gpu_throughput: no CUDA device here; run it on a GPU machine, or with --tiny to check the script")
    model_dir = build_model(Path(tempfile.mkdtemp(prefix="qwen3-random-")) / "model", args.tiny, args.tokenizer)
    common = ["--model-dir", str(model_dir), "--steps", str(args.steps), "--warmup", str(args.warmup), "--batch",
              str(args.batch), "--seq-len",
              str(args.seq_len), "--eval-items", str(args.eval_items), "--max-new-tokens", str(args.max_new_tokens)]
    # An untimed run first: on a fresh H200 the first training process ran ~45% slower than the same run later
    # (6,966 vs 12,610 tokens/s, 24805cc and 9d01a31; likely CUDA libraries and the new checkpoint cold on disk)
    warm = [*common]
    warm[warm.index("--steps") + 1] = "4"
    print("gpu_throughput: warm-up (untimed) ...", file=sys.stderr, flush=True)
    _child("warm-up", ["--one", "train:driftlab", *warm])
    per_token = lora_flops_per_token(TINY if args.tiny else QWEN3_4B, args.seq_len)
    if args.runs:  # a diagnosis: the runs in the order given (repeats kept), saved after each one
        done = []
        for name in args.runs.split(","):
            done.append(_mfu(_child(name, ["--one", f"train:{name}", *common, "--cap-gib", str(args.cap_gib)],
                                    args.train_limit_s), per_token))
            save("gpu_throughput_diagnosis" + ("_tiny" if args.tiny else ""),
                 {"benchmark": "gpu_throughput_diagnosis", "machine": machine(), "command": command, "why": args.note,
                  "train": done})
        return
    train, evals = {}, {}
    settings = {"steps": args.steps, "warmup": args.warmup, "batch": args.batch, "seq_len": args.seq_len,
                "lora_r": 16, "eval_items": args.eval_items, "max_new_tokens": args.max_new_tokens}

    def write(final: bool) -> None:  # after every run: a call cut short by its time limit still leaves what ran
        result = {"benchmark": "gpu_throughput", "machine": machine(), "tiny": args.tiny, "command": command,
                  "settings": settings, "complete": final, "train": train, "eval": evals,
                  "ratios": ratios(train, evals)}
        if final:
            print(json.dumps(result["ratios"]), file=sys.stderr)
        save("gpu_throughput_tiny" if args.tiny else "gpu_throughput", result)

    n = args.eval_items

    def evaluate(name: str, spec: str) -> None:
        if name == "vllm" and not _importable("vllm"):
            evals[name] = {"run": name, "skipped": "vLLM not installed (pip install 'driftlab[vllm]')"}
            return
        print(f"gpu_throughput: eval {name} ...", file=sys.stderr, flush=True)
        evals[name] = {**_child(name, ["--one", f"eval:{spec}", *common], args.eval_limit_s), "run": name}
        write(False)

    def run_train(name: str) -> None:
        print(f"gpu_throughput: train {name} ...", file=sys.stderr, flush=True)
        train[name] = _mfu(_child(name, ["--one", f"train:{name}", *common], args.train_limit_s), per_token)
        if name == "trl_best" and train[name].get("settings") and not train[name]["settings"]["liger"]:
            train[name]["note"] = "liger-kernel not installed: checkpointing off without Liger"  # not its best seen
        write(False)

    # the runs of issue 21's targets first (a call cut short keeps them), each in a time limit so one that hangs
    # cannot take the lease: training, then the HF backend at issue 21's shape (batch 64, as measured at a11c114) on
    # static slots compiled (eval.decoding's GPU default; its compile is the least predictable run, hence after the
    # training targets); then the diagnosis runs: activation offloading, the whole batch in one pass, the
    # memory-saving setting at one row a pass, dynamic batches
    for name in ("driftlab", "trl_defaults", "trl_best", "driftlab_low_memory"):
        run_train(name)
    evaluate("hf_static", "hf_static:64:static")
    run_train("driftlab_offload")
    run_train("driftlab_whole_batch")  # what the default's micro-batches cost and spare
    run_train("driftlab_low_memory_1row")  # the memory-saving setting's other candidate
    evaluate("hf", "hf:64")
    # every prompt in one batch (dynamic first: the static one compiles another shape), then vLLM where installed
    evaluate(f"hf_batch{n}", f"hf:{n}")
    evaluate(f"hf_static_batch{n}", f"hf_static:{n}:static")
    evaluate("vllm", "vllm")
    write(True)


def ratios(train: dict, evals: dict) -> dict:
    """Issue 21's ratios, each None until both of its runs are in."""
    d, low, off, trl, best, whole, one = (train.get(n, {}) for n in (*RUNS, "driftlab_whole_batch",
                                                                      "driftlab_low_memory_1row"))

    def ratio(a, b, key):
        return round(a[key] / b[key], 2) if a.get(key) and b.get(key) else None

    return {"steady_tokens_per_s_vs_trl_defaults": ratio(d, trl, "steady_tokens_per_s"),
            "steady_tokens_per_s_vs_trl_best": ratio(d, best, "steady_tokens_per_s"),
            "tokens_per_s_vs_trl_defaults": ratio(d, trl, "tokens_per_s"),
            "vram_vs_trl_defaults": ratio(d, trl, "peak_vram_gib"),
            "low_memory_vram_vs_trl_defaults": ratio(low, trl, "peak_vram_gib"),
            "low_memory_steady_tokens_per_s_vs_trl_defaults": ratio(low, trl, "steady_tokens_per_s"),
            "offload_vram_vs_trl_defaults": ratio(off, trl, "peak_vram_gib"),
            "offload_steady_tokens_per_s_vs_trl_defaults": ratio(off, trl, "steady_tokens_per_s"),
            "low_memory_1row_vram_vs_trl_defaults": ratio(one, trl, "peak_vram_gib"),
            "low_memory_1row_steady_tokens_per_s_vs_trl_defaults": ratio(one, trl, "steady_tokens_per_s"),
            "whole_batch_steady_tokens_per_s_vs_trl_defaults": ratio(whole, trl, "steady_tokens_per_s"),
            "whole_batch_vram_vs_trl_defaults": ratio(whole, trl, "peak_vram_gib"),
            "steady_tokens_per_s_vs_whole_batch": ratio(d, whole, "steady_tokens_per_s"),
            "hf_static_vs_hf_tokens_per_s": ratio(evals.get("hf_static", {}), evals.get("hf", {}),
                                                  "generated_tokens_per_s"),
            "vllm_vs_hf_items_per_s": ratio(evals.get("vllm", {}), evals.get("hf", {}), "items_per_s")}


def _mfu(r: dict, per_token: float) -> dict:
    if "error" not in r:
        r["mfu"] = round(per_token * (r["steady_tokens_per_s"] or r["tokens_per_s"]) / H100_BF16_PEAK, 4)
    return r


def _child(name: str, args: list[str], limit_s: int = 3600) -> dict:
    """One run in its own process, stopped after `limit_s`; a failed or stopped run is recorded (with the end of its
    stderr), the others still run."""
    try:
        result = run_child(Path(__file__), args, timeout=limit_s)
    except subprocess.TimeoutExpired:
        result = {"run": name, "error": f"stopped at its time limit ({limit_s} s)"}
    except Exception as err:  # noqa: BLE001 - one run's failure is a result too (the lease is short)
        result = {"run": name, "error": str(err)[-2000:]}
    print(json.dumps(result), file=sys.stderr, flush=True)  # on record even if a later run is cut off
    return result


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


if __name__ == "__main__":
    main()
