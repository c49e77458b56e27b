"""Write docs/benchmarks.md from benchmarks/results/*.json: what was measured, where, with which command, and how
each ratio compares with its target (issue 8). Only measured numbers appear; a missing result says so."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DOC, RESULTS  # noqa: E402


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _machine(m: dict) -> str:
    bf16 = "AVX512-BF16" if m.get("avx512_bf16") else "no bf16 hardware"
    versions = ", ".join(f"{k} {m[k]}" for k in ("torch", "transformers", "trl", "peft", "lm_eval") if k in m)
    return f"{m['cpu']}, {m['cores']} cores ({bf16}), {m['ram_gib']} GiB; {m.get('gpu', 'no GPU')}; {versions}; {m['date']}"


def _target(value: float, target: float, higher: bool = True) -> str:
    ok = value >= target if higher else value <= target
    return f"{'met' if ok else '**not met**'} (target {'≥' if higher else '≤'} {target:g})"


def train_section(r: dict | None) -> list[str]:
    if r is None:
        return ["## Training throughput", "", "Not measured yet: `python benchmarks/train_throughput.py`.", ""]
    lines = ["## Training throughput", "", f"Machine: {_machine(r['machine'])}.  ", f"Command: `{r['command']}`.  ",
             f"GEMM ceiling measured in the same run: float32 {r['gemm_flops']['float32']} GFLOP/s, bfloat16 "
             f"{r['gemm_flops']['bfloat16']} GFLOP/s.", "",
             "| run | bf16 | grad. checkpointing | tokens | wall (s) | tokens/s | utilisation | peak mem (MB) | "
             "first loss | final loss |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, x in r["runs"].items():
        lines.append(f"| {name} | {x['bf16']} | {x['gradient_checkpointing']} | {x['tokens']:,} | {x['wall_s']} | "
                     f"{x['tokens_per_s']} | {x['utilisation']:.0%} | {x['peak_memory_mb']:,} {x['memory_kind']} | "
                     f"{x['first_loss']:.4f} | {x['final_loss']:.4f} |")
    q = r["ratios"]
    util = r["runs"]["driftlab"]["utilisation"]
    lines += ["", f"- driftlab vs TRL at its best settings: **{q['tokens_per_s_vs_trl_best']}×** tokens/s — "
              f"{_target(q['tokens_per_s_vs_trl_best'], 1.6)}",
              f"- driftlab vs TRL defaults: **{q['tokens_per_s_vs_trl_defaults']}×** tokens/s — "
              f"{_target(q['tokens_per_s_vs_trl_defaults'], 15)}; peak memory {q['memory_vs_trl_defaults']}× TRL's",
              f"- utilisation (4·N FLOPs per token × tokens/s ÷ GEMM FLOP/s of the dtype in use): "
              f"**{util:.0%}** — {_target(util, 0.8)}",
              f"- final loss vs TRL best: relative difference {q['final_loss_rel_diff_vs_trl_best']:.2%}"]
    dist = q.get("loss_curve_dist_vs_fp32")
    if dist:
        ok = dist["driftlab"] <= max(dist["trl_best"], dist["trl_defaults"]) * 1.25
        lines.append("- distance of each loss curve from TRL in float32 (mean over steps of |loss − fp32 loss| ÷ fp32 "
                     "loss; bf16 rounding alone moves it): " + ", ".join(f"{k} {v:.2%}" for k, v in dist.items())
                     + (" — driftlab is as close to the exact computation as TRL's bf16 runs: the same training, not a "
                        "faster different one" if ok else " — **driftlab strays further from float32 than TRL**"))
    return lines + [""]


def profile_section(r: dict | None) -> list[str]:
    if r is None:
        return []
    lines = ["### Where a training step goes", "", f"Command: `{r['command']}` (torch.profiler over "
             f"{r['steps_profiled']} LoRA steps of the default config, forward + backward). Matrix multiplies take "
             f"**{r['gemm_time_share']:.0%}** of op time and reach {r['gemm_gflops_achieved']} GFLOP/s against a "
             f"{r['gemm_gflops_ceiling_bf16']} GFLOP/s square-bf16-GEMM ceiling; the rest is the ops below.", "",
             "| op | self time (s) | calls | share |", "|---|---:|---:|---:|"]
    lines += [f"| `{o['op']}` | {o['self_s']} | {o['calls']} | {o['share']:.1%} |" for o in r["top_ops"]]
    return lines + [""]


def pass_section(r: dict | None) -> list[str]:
    """The fixed cost of a forward/backward pass (benchmarks/pass_overhead.py): what a micro-batch split repeats."""
    if r is None:
        return []
    st = r["settings"]
    lines = ["### What one training pass costs beyond its arithmetic", "",
             f"Machine: {_machine(r['machine'])} ({r['device']}).  ", f"Command: `{r['command']}`: one forward/"
             f"backward pass of {st['tokens']} tokens through {st['layers']} Qwen3 decoder layers at "
             f"{'Qwen3-4B widths' if st['widths'] == 'Qwen3-4B' else 'tiny widths'}, so the time is the fixed cost "
             "a pass pays whatever it holds (what splitting a batch into micro-batches repeats; train/memory.py).", "",
             "| model | checkpointing | ms a pass | aten compute ops a pass |", "|---|---|---:|---:|"]
    lines += [f"| {x['model']} | {x['checkpointing']} | {x['ms_per_pass']} | {x['aten_compute_ops'] or ''} |"
              for x in r["rows"]]
    return lines + [""]


def eval_section(r: dict | None) -> list[str]:
    if r is None:
        return ["## Evaluation throughput", "", "Not measured yet: `python benchmarks/eval_throughput.py`.", ""]
    lines = ["## Evaluation throughput", "", f"Machine: {_machine(r['machine'])}.  ", f"Command: `{r['command']}`.  ",
             f"Items: the default study's zero-shot suites {', '.join(r['suites'])}, chat template, greedy.", "",
             "| run | batch | dtype | decoding | items | wall (s) | items/s | generated tokens/s | identical replies to |",
             "|---|---:|---|---|---:|---:|---:|---:|---|"]
    for name, x in r["runs"].items():
        same = "—" if x["compared_with"] == name else f"{x['identical_to_driftlab']:.1%} of {x['compared_with']}"
        decoding = x.get("decoding", "dynamic" if name.startswith("driftlab") else "lm-eval (HF generate)")
        lines.append(f"| {name} | {x['batch_size']} | {x['dtype']} | {decoding} | {x['items']} | {x['wall_s']} | "
                     f"{x['items_per_s']} | {x['tokens_per_s']} | {same} |")
    lines.append("")
    for k, v in r["ratios"].items():
        same = "" if v["identical_replies"] is None else f", {v['identical_replies']:.1%} identical replies"
        lines.append(f"- {k.replace('_', ' ')}: {v['driftlab']} vs {v['lm_eval']} **{v['items_per_s_ratio']}×** "
                     f"items/s{same} — {_target(v['items_per_s_ratio'], 3)}")
    return lines + [""]


def study_section(r: dict | None) -> list[str]:
    if r is None:
        return ["## Study wall time", "", "Not measured yet: `python benchmarks/study_wall_time.py`.", ""]
    cold, warm = r["cold"], r["warm"]
    lines = ["## Study wall time", "", f"Machine: {_machine(r['machine'])}.  ", f"Command: `{r['command']}` "
             f"({r['config']}; model already converted).", "",
             f"- cold (empty results store and train cache): **{cold['wall_s'] / 60:.1f} min** — "
             f"{_target(cold['wall_s'] / 60, 10, higher=False)} minutes",
             f"- warm re-run: **{warm['wall_s']:.0f} s = {r['ratios']['warm_vs_cold']:.1%} of cold** — "
             f"{_target(r['ratios']['warm_vs_cold'], 0.05, higher=False)}", "",
             "| stage | cold (s) | warm (s) |", "|---|---:|---:|"]
    for stage, secs in cold["timings_s"].items():
        lines.append(f"| {stage} | {secs:.1f} | {warm['timings_s'].get(stage, 0):.1f} |")
    return lines + [""]


def gpu_section(r: dict | None) -> list[str]:
    lines = ["## GPU (Qwen3-4B architecture, random weights, bf16, LoRA r16, sequence length 1024)", ""]
    if r is None:
        return lines + ["No result file yet: the one H200 run so far (a11c114, quoted in issue 21: driftlab's "
                        "defaults of then at 0.65× TRL's tokens/s) left none in the repository, and no device has been "
                        "lent since. On a GPU, `make bench` "
                        "runs `python benchmarks/gpu_throughput.py` (driftlab's defaults and memory-saving setting vs "
                        "TRL's defaults and its best configuration seen: steady and wall tokens/s, peak VRAM, MFU; HF "
                        "vs vLLM eval backend); `--tiny` checks the script on a CPU; `scripts/device_check.sh` runs "
                        "it on a lent GPU.", ""]
    cut = ("" if r.get("complete", True) else
           " **Incomplete**: the call's time limit stopped it; the runs below are those that finished.")
    lines += [f"Machine: {_machine(r['machine'])}.  ", f"Command: `{r['command']}`; settings {r['settings']}.{cut}", "",
              "| run | tokens/s (steady) | tokens/s (wall) | peak VRAM (GiB) | MFU | checkpointing | micro-batch | "
              "Liger | padding-free |", "|---|---:|---:|---:|---:|---|---:|---|---|"]
    for x in r["train"].values():
        if "error" in x:
            lines.append(f"| {x['run']} | {_failed(x)} | | | | | | | |")
            continue
        st = x.get("settings", {"gradient_checkpointing": x.get("gradient_checkpointing")})
        lines.append(f"| {x['run']}{' (' + x['note'] + ')' if x.get('note') else ''} | "
                     f"{x.get('steady_tokens_per_s', 'n/a')} | {x['tokens_per_s']} | {x['peak_vram_gib']} | "
                     f"{x['mfu']:.1%} | {st.get('gradient_checkpointing')} | {st.get('micro_batch') or ''} | "
                     f"{st.get('liger')} | "
                     f"{st.get('padding_free')} |")
    lines += ["", "| eval backend | batch | decoding | items/s | generated tokens/s |", "|---|---:|---|---:|---:|"]
    lines += [f"| {x['run']} | {x.get('batch_size', '')} | {x.get('decoding', 'dynamic' if x['run'] != 'vllm' else '')} | "
              f"{x.get('items_per_s', x.get('skipped') or _failed(x))} | "
              f"{x.get('generated_tokens_per_s', '')} |" for x in r["eval"].values()]
    q = r["ratios"]
    # issue 21's targets: steady tokens/s ≥ 2× TRL defaults' and ≥ 1× TRL's best seen, VRAM ≤ TRL defaults';
    # the memory-saving setting ≤ 0.5× their VRAM at ≥ 1× their tokens/s; HF generation ≥ 3× 795 tokens/s
    targets = [("steady_tokens_per_s_vs_trl_defaults", "driftlab vs TRL defaults, steady tokens/s", 2, True),
               ("steady_tokens_per_s_vs_trl_best", "driftlab vs TRL's best seen, steady tokens/s", 1, True),
               ("tokens_per_s_vs_trl_defaults", "driftlab vs TRL defaults, wall tokens/s", 2, True),
               ("vram_vs_trl_defaults", "driftlab's peak VRAM vs TRL defaults'", 1, False),
               ("low_memory_vram_vs_trl_defaults", "memory-saving setting's VRAM vs TRL defaults'", 0.5, False),
               ("low_memory_steady_tokens_per_s_vs_trl_defaults", "memory-saving setting vs TRL defaults, steady "
                "tokens/s", 1, True),
               ("offload_vram_vs_trl_defaults", "memory-saving setting + activation offloading, VRAM vs TRL "
                "defaults'", 0.5, False),
               ("offload_steady_tokens_per_s_vs_trl_defaults", "memory-saving setting + activation offloading vs "
                "TRL defaults, steady tokens/s", 1, True),
               ("low_memory_1row_vram_vs_trl_defaults", "memory-saving setting at 1 row a pass (train.micro_batch: "
                "1), VRAM vs TRL defaults'", 0.5, False),
               ("low_memory_1row_steady_tokens_per_s_vs_trl_defaults", "memory-saving setting at 1 row a pass vs "
                "TRL defaults, steady tokens/s", 1, True)]
    lines.append("")
    for key, what, target, higher in targets:
        if q.get(key) is not None:
            lines.append(f"- {what}: **{q[key]}×** — {_target(q[key], target, higher=higher)}")
    for x in r["eval"].values():
        hf = x.get("generated_tokens_per_s") if x["run"].startswith("hf") else None
        if hf:
            lines.append(f"- HF backend generation ({x.get('decoding', 'dynamic')}) at batch {x.get('batch_size', 64)}: "
                         f"{hf} tokens/s = "
                         f"**{hf / 795:.2f}×** the 795 of a11c114 (batch 64) — {_target(hf / 795, 3)}")
    if q.get("steady_tokens_per_s_vs_whole_batch") is not None:  # a diagnosis, not a target
        lines.append(f"- the default's micro-batches vs the whole batch in one pass (diagnosis): "
                     f"**{q['steady_tokens_per_s_vs_whole_batch']}×** steady tokens/s" + "".join(
                         f"; the whole batch: {q[k]}× TRL defaults' {what}" for k, what in (
                             ("whole_batch_steady_tokens_per_s_vs_trl_defaults", "steady tokens/s"),
                             ("whole_batch_vram_vs_trl_defaults", "VRAM")) if q.get(k) is not None))
    if q.get("hf_static_vs_hf_tokens_per_s") is not None:
        lines.append(f"- HF backend, static slots compiled vs dynamic batches (batch 64): "
                     f"**{q['hf_static_vs_hf_tokens_per_s']}×** generated tokens/s")
    if q.get("vllm_vs_hf_items_per_s") is not None:
        lines.append(f"- vLLM vs HF backend: **{q['vllm_vs_hf_items_per_s']}×** items/s")
    return lines + [""] + diagnosis_section(_load("gpu_throughput_diagnosis"), r)


def _failed(x: dict) -> str:
    """A run that failed or was stopped, as a table cell: the last line of what it left (a traceback's error)."""
    return "failed: " + (x.get("error", "?").strip().splitlines() or ["?"])[-1][:160]


def diagnosis_section(d: dict | None, full: dict) -> list[str]:
    """A later, shorter run on the same kind of machine (its runs in the order they ran), and its ratios against
    the full run's TRL rows: across two runs, so not the issue's one-run ratio."""
    if d is None:
        return []
    commit = d.get("commit") or d["machine"].get("commit", "commit not recorded")
    lines = [f"### Diagnosis run ({commit}; {d['machine']['date']})", "", f"Why: {d.get('why') or 'not given'}.  ",
             f"Command: `{d['command']}`.", "", "| order | run | tokens/s (steady) | peak VRAM (GiB) | Liger |",
             "|---:|---|---:|---:|---|"]
    for k, x in enumerate(d["train"], 1):
        lines.append(f"| {k} | {x['run']} | {_failed(x)} | | |" if "error" in x else
                     f"| {k} | {x['run']} | {x['steady_tokens_per_s']} | {x['peak_vram_gib']} | "
                     f"{x['settings']['liger']} |")
    trl, best = full["train"].get("trl_defaults", {}), full["train"].get("trl_best", {})
    ours = [x for x in d["train"] if x["run"] == "driftlab" and "error" not in x]
    if ours and trl.get("steady_tokens_per_s") and best.get("steady_tokens_per_s") and trl.get("peak_vram_gib"):
        t = ours[0]["steady_tokens_per_s"]
        lines += ["", f"Against the full run's TRL rows (two runs, so not the one-run ratio the targets ask for): "
                  f"{t / trl['steady_tokens_per_s']:.2f}× TRL defaults' steady tokens/s, "
                  f"{t / best['steady_tokens_per_s']:.2f}× TRL's best, "
                  f"{ours[0]['peak_vram_gib'] / trl['peak_vram_gib']:.2f}× TRL defaults' VRAM."]
    return lines + [""]


def main() -> None:
    head = ["# Benchmarks", "", "Measured by the scripts in `benchmarks/` (`make bench`), each comparing driftlab with "
            "its peer in the same run; JSON in `benchmarks/results/`. This page is generated by "
            "`benchmarks/report.py` from those files: every number below was measured, none typed in.", ""]
    body = train_section(_load("train_throughput")) + profile_section(_load("profile_train"))
    body += pass_section(_load("pass_overhead")) + pass_section(_load("pass_overhead_real"))
    body += eval_section(_load("eval_throughput"))
    body += study_section(_load("study_wall_time")) + gpu_section(_load("gpu_throughput"))
    notes = Path(__file__).with_name("NOTES.md")
    DOC.write_text("\n".join(head + body) + ("\n" + notes.read_text() if notes.exists() else ""))
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
