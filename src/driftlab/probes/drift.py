"""Drift without external data: how far the tuned model's next-token distributions moved from the base model's on
text the base model itself wrote (its greedy replies to the bundled general prompts, generated once and kept in the
results store), and the tuned model's NLL on that text. Per prompt: mean token-level KL(base ‖ tuned) over the
reply tokens, and both models' NLL. KL of a model against itself is 0; a fine-tune that leaves general behaviour
alone stays near 0. Optional: NLL of both models on a user text file (`probes.drift_text`), in 256-token chunks.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field

from driftlab.probes import PROBES, Probe
from driftlab.registry import Metric, Options


class DriftOptions(Options):
    drift_prompts: int = Field(40, ge=1, le=50, description="Drift: how many of the 50 general prompts reserved for "
                               "it (never used as replay training data).")
    drift_max_new_tokens: int = Field(96, ge=1, description="Drift: length of the base model's replies.")
    drift_text: Path | None = Field(None, description="Drift: optional text file for NLL of base and tuned.")


def token_kl(base_lm, tuned_lm, ids: list[int], start: int) -> dict:
    """Mean KL(base ‖ tuned) and mean NLLs over the tokens ids[start:], each predicted from its prefix."""
    import torch

    with torch.inference_mode():
        return _token_kl(base_lm, tuned_lm, ids, start)


def _token_kl(base_lm, tuned_lm, ids: list[int], start: int) -> dict:
    import torch

    x = torch.tensor([ids], device=next(base_lm.parameters()).device)
    logp_b = base_lm(x).logits[0, start - 1 : len(ids) - 1].float().log_softmax(-1)
    if tuned_lm is base_lm:  # the base run: one forward pass, KL exactly 0
        logp_t = logp_b
    else:
        logp_t = tuned_lm(x.to(next(tuned_lm.parameters()).device)).logits[0, start - 1 : len(ids) - 1].float()
        logp_t = logp_t.log_softmax(-1).to(logp_b.device)
    kl = (logp_b.exp() * (logp_b - logp_t)).sum(-1)
    target = x[0, start:].to(logp_b.device)
    rows = torch.arange(len(target), device=logp_b.device)
    return {"kl": kl.mean().item(), "nll_base": -logp_b[rows, target].mean().item(),
            "nll_tuned": -logp_t[rows, target].mean().item(), "tokens": len(target)}


def drift(base_lm, tuned_lm, tok, chats: list[str], replies: list[str], ids: list[str]) -> list[dict]:
    rows = []
    for pid, chat, reply in zip(ids, chats, replies):
        ctx = tok(chat, add_special_tokens=False).input_ids
        cont = tok(reply, add_special_tokens=False).input_ids
        if not cont:
            continue
        rows.append({"id": pid, **token_kl(base_lm, tuned_lm, ctx + cont, len(ctx))})
    return rows


def text_nll(base_lm, tuned_lm, tok, path: Path, chunk: int = 256, max_chunks: int = 64) -> dict:
    ids = tok(Path(path).read_text(encoding="utf-8"), add_special_tokens=False).input_ids
    starts = [i for i in range(0, len(ids) - 1, chunk) if len(ids[i : i + chunk]) > 1][:max_chunks]
    rows = [token_kl(base_lm, tuned_lm, ids[i : i + chunk], 1) for i in starts]
    n = sum(r["tokens"] for r in rows)
    return {"file": str(path), "tokens": n,
            "nll_base": sum(r["nll_base"] * r["tokens"] for r in rows) / n if n else None,
            "nll_tuned": sum(r["nll_tuned"] * r["tokens"] for r in rows) / n if n else None}


def summary(rows: list[dict]) -> dict:
    n = len(rows)
    mean = lambda k: sum(r[k] for r in rows) / n if n else None  # noqa: E731
    return {"n": n, "kl": mean("kl"), "nll_base": mean("nll_base"), "nll_tuned": mean("nll_tuned")}


def _run(ctx, opts: DriftOptions) -> tuple[list[dict], dict]:
    """Base replies to general prompts (cached), then KL(base ‖ this model) on them. For the base model itself the
    KL is 0 by construction (one forward pass) and the row records its NLL on its own replies. The rows are kept in
    the results store under both models' fingerprints and the exact texts, so a re-run loads neither model."""
    from contextlib import nullcontext

    from driftlab.data.sources import drift_prompts
    from driftlab.eval.open import open_backend
    from driftlab.eval.store import result_key

    if ctx.eval_cfg.backend != "hf":
        return [], {"skipped": "drift needs the HF backend (full next-token distributions)"}
    tuned = ctx.backend
    with (open_backend(ctx.model.base_only(), ctx.eval_cfg) if ctx.model.artifact is not None
          else nullcontext(tuned)) as base:
        prompts = [p["question"] for p in drift_prompts(opts.drift_prompts)]
        replies = [g.text for g in base.generate(prompts, opts.drift_max_new_tokens)]
        chats = [base.chat(p) for p in prompts]
        user_text = Path(opts.drift_text).read_text(encoding="utf-8") if opts.drift_text else None
        key = result_key(f"{base.fingerprint}|{tuned.fingerprint}", "drift", json.dumps([chats, replies, user_text]),
                         {})
        if tuned.store is not None and (hit := tuned.store.get_many([key]).get(key)) is not None:
            return hit["rows"], hit["result"]
        rows = drift(base.model, tuned.model, tuned.tok, chats, replies,
                     [f"general-{i:03d}" for i in range(len(prompts))])
        result = summary(rows)
        if opts.drift_text:
            result["text"] = text_nll(base.model, tuned.model, tuned.tok, opts.drift_text)
    if tuned.store is not None:
        tuned.store.put_many({key: {"rows": rows, "result": result}})
    return rows, result


PROBES.register(Probe(name="drift", summary="how far next-token distributions moved from the base model's", order=30,
                      options=DriftOptions, run=_run, metrics=(
    Metric("kl", "lower", "token KL(base ‖ tuned) on the base model's own general replies"),
    Metric("nll_tuned", "lower", "NLL on that text"))))
