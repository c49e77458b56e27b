import pytest
import yaml

from pathlib import Path

from driftlab.config import load_config
from driftlab.errors import ConfigError
from tests.conftest import ARITH

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path, cfg):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def base_cfg():
    return {"name": "t", "data": {"target": dict(ARITH)}}


def test_default_config_loads():
    cfg = load_config("configs/default.yaml")
    assert cfg.data.target.task == "basic_arithmetic"
    assert len(cfg.data.heldout) >= 3
    assert all(s.path is None or s.path.exists() for s in cfg.data.heldout)


def test_unknown_top_level_key_is_named(tmp_path):
    cfg = base_cfg() | {"sead": 3}
    with pytest.raises(ConfigError, match=r"unknown config key 'sead'"):
        load_config(write(tmp_path, cfg))


def test_mistyped_nested_key_is_named_with_its_path(tmp_path):
    cfg = base_cfg() | {"train": {"learning_rte": 1e-3}}
    with pytest.raises(ConfigError, match=r"study.yaml: unknown config key 'train.learning_rte'"):
        load_config(write(tmp_path, cfg))


def test_wrong_type_names_key(tmp_path):
    cfg = base_cfg() | {"train": {"batch_size": "big"}}
    with pytest.raises(ConfigError, match=r"config key 'train.batch_size'"):
        load_config(write(tmp_path, cfg))


def test_a_check_across_keys_names_its_key_not_an_empty_one(tmp_path):
    """Issue 18: errors of the whole config printed `config key ''`."""
    cfg = base_cfg() | {"probes": {"suite": "nope"}}
    with pytest.raises(ConfigError, match=r"study.yaml: config key 'probes.suite': no suite named 'nope'") as err:
        load_config(write(tmp_path, cfg))
    assert "''" not in str(err.value)
    cfg = base_cfg() | {"eval": {"strategies": [{"name": "cot", "suites": ["nope"]}]}}
    with pytest.raises(ConfigError, match=r"config key 'eval.strategies.0.suites': no suite named 'nope'"):
        load_config(write(tmp_path, cfg))


def test_cli_style_overrides(tmp_path):
    cfg = load_config(write(tmp_path, base_cfg()), ["train.learning_rate=5e-4", "data.target.size=7",
                                                    "model.name_or_path=/some/dir"])
    assert cfg.train.learning_rate == 5e-4
    assert cfg.data.target.size == 7
    assert cfg.model.name_or_path == "/some/dir"


def test_override_with_unknown_key_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key 'train.nope'"):
        load_config(write(tmp_path, base_cfg()), ["train.nope=1"])


def test_variant_override_unknown_key(tmp_path):
    """A variant's train block is validated when the config loads (before any run dir exists)."""
    with pytest.raises(ConfigError, match=r"unknown config key 'variants.v.train.lora_rr'"):
        load_config(write(tmp_path, base_cfg() | {"variants": [{"name": "v", "train": {"lora_rr": 4}}]}))


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_suite_source_needs_its_fields(tmp_path):
    cfg = base_cfg()
    cfg["data"]["heldout"] = [{"name": "x", "source": "jsonl"}]
    with pytest.raises(ConfigError, match="needs 'path'"):
        load_config(write(tmp_path, cfg))


@pytest.mark.parametrize("override,message", [
    ("data.heldout.size=5", "needs a list index"),
    ("name.x=1", "'name' is a value"),
    ("name=[", "not valid YAML"),
    ("data.heldout.7.size=1", "list index below"),
    ("nokeyvalue", "expected key=value"),
])
def test_bad_overrides_are_one_clear_error(tmp_path, override, message):
    cfg = base_cfg()
    cfg["data"]["heldout"] = [{"name": "h", "source": "jsonl", "path": "capitals.jsonl"}]
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, cfg), [override])


def test_list_index_override(tmp_path):
    cfg = base_cfg()
    cfg["data"]["heldout"] = [{"name": "h", "source": "jsonl", "path": "capitals.jsonl"}]
    assert load_config(write(tmp_path, cfg), ["data.heldout.0.size=9"]).data.heldout[0].size == 9


def test_missing_user_file_is_not_swapped_for_a_bundled_suite(tmp_path):
    cfg = base_cfg()
    cfg["data"]["heldout"] = [{"name": "h", "source": "jsonl", "path": "mydata/capitals.jsonl"}]
    loaded = load_config(write(tmp_path, cfg))
    assert loaded.data.heldout[0].path == tmp_path / "mydata" / "capitals.jsonl"


def test_registered_options_are_flat_keys_validated_by_their_entry():
    from driftlab.config import StudyConfig

    cfg = load_config(ROOT / "configs" / "mitigations.yaml", ["train.lora_r=8", "probes.drift_prompts=10"])
    assert cfg.train.method_options.lora_r == 8 and cfg.probes.of("drift").drift_prompts == 10
    sc = next(s for s in cfg.eval.strategies if s.name == "self_consistency")
    assert (sc.options.n, sc.options.temperature) == (5, 0.7)
    dumped = cfg.model_dump(mode="json")  # the snapshot keeps the YAML's flat shape and reads back the same
    assert dumped["train"]["lora_r"] == 8 and dumped["probes"]["drift_prompts"] == 10
    assert "options" not in dumped["train"] and "options" not in dumped["probes"]
    assert StudyConfig.model_validate(dumped) == cfg
    cfg.probes.run = ["drift"]  # an assignment re-validates and keeps the options
    cfg.train.learning_rate = 1e-4
    assert cfg.probes.of("drift").drift_prompts == 10 and cfg.train.method_options.lora_r == 8
    svf = cfg.variant_train(cfg.variants[2])  # the shared block's LoRA keys are accepted for an SVF variant
    assert svf.method == "svf" and svf.options["lora"].lora_r == 8


def test_snapshots_from_before_per_strategy_options_still_load(tmp_path):
    """Older config.yaml snapshots gave every strategy every strategy's keys at their defaults; gate and sweep read
    them back."""
    old = [{"name": "zero_shot", "k": 3, "n": 5, "temperature": 0.7, "seed": 0},
           {"name": "few_shot", "k": 4, "n": 5, "temperature": 0.7, "seed": 0}]
    cfg = load_config(write(tmp_path, {**base_cfg(), "eval": {"strategies": old}}))
    assert cfg.eval.strategies[1].options.k == 4 and cfg.eval.strategies[0].model_dump()["name"] == "zero_shot"
    assert "k" not in cfg.eval.strategies[0].model_dump()


@pytest.mark.parametrize("override, message", [
    (["train.method=lorra"], "config key 'train.method': unknown method 'lorra' (known: "),
    (["eval.strategies.2.k=5"], "unknown config key 'eval.strategies.2.k'"),  # k is few_shot's, not cot's
    (["eval.strategies.1.k=0"], "config key 'eval.strategies.1.k': Input should be greater than or equal to 1"),
    (["probes.samples=1"], "config key 'probes.samples': Input should be greater than or equal to 2"),
    (["probes.run=[vibes]"], "config key 'probes.run': unknown probe 'vibes'"),
    (["probes.options={}"], "unknown config key 'probes.options'"),
    (["gate.3.probe=drift.kll"], "probe 'drift' has no metric 'kll' (its metrics: kl, nll_tuned)"),
    (["gate.3.probe=drift"], "name a probe metric as <probe>.<metric>"),
    (["probes.run=drift"], "config key 'probes.run': Input should be a valid list"),
])
def test_registry_names_and_options_errors_name_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(ROOT / "configs" / "default.yaml", override)
    assert message in str(err.value)


def test_model_copy_with_an_option_key_validates_it():
    cfg = load_config(ROOT / "configs" / "default.yaml")
    assert cfg.train.model_copy(update={"lora_r": 4}).method_options.lora_r == 4
    assert cfg.train.model_copy(update={"max_steps": 3}).method_options.lora_r == 16
    few = next(s for s in cfg.eval.strategies if s.name == "few_shot")
    assert few.model_copy(update={"k": 7}).options.k == 7
    with pytest.raises(ValueError):  # a typo is not set silently
        cfg.train.model_copy(update={"lora_rr": 4})


def test_a_multi_step_family_becomes_one_suite_per_number_of_terms_and_its_snapshot_reloads(tmp_path):
    cfg = base_cfg()
    cfg["data"]["heldout"] = [{**ARITH, "name": "steps", "terms": [4, 2], "max_new_tokens": 64,
                               "task_kwargs": {**ARITH["task_kwargs"], "min_terms": 9}}]
    loaded = load_config(write(tmp_path, cfg))
    suites = {s.name: s for s in loaded.data.heldout}
    assert list(suites) == ["steps_2", "steps_4"]
    for k in (2, 4):
        s = suites[f"steps_{k}"]
        assert (s.family, s.terms, s.task_kwargs["min_terms"], s.task_kwargs["max_terms"]) == ("steps", [k], k, k)
    snapshot = tmp_path / "snap" / "study.yaml"
    snapshot.parent.mkdir()
    snapshot.write_text(yaml.safe_dump(loaded.model_dump(mode="json")))
    assert [s.name for s in load_config(snapshot).data.heldout] == ["steps_2", "steps_4"]  # not expanded twice


@pytest.mark.parametrize("suite, message", [
    ({"name": "s", "source": "jsonl", "path": "multistep.jsonl", "terms": [2, 2]}, "distinct"),
    ({**ARITH, "name": "s", "terms": [1, 2]}, "at least 2"),
])
def test_bad_multi_step_families_are_one_error(tmp_path, suite, message):
    cfg = base_cfg()
    cfg["data"]["heldout"] = [suite]
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, cfg))
    cfg = base_cfg()
    cfg["data"]["target"]["terms"] = [2, 3]
    with pytest.raises(ConfigError, match="target.terms"):
        load_config(write(tmp_path, cfg))


def test_a_suites_reply_budget_is_a_floor_under_every_strategy():
    from driftlab.config import StrategyConfig, SuiteConfig
    from driftlab.eval.strategies import reply_budget

    roomy = SuiteConfig(**{**ARITH, "max_new_tokens": 96})
    plain = SuiteConfig(**ARITH)
    assert reply_budget(StrategyConfig(name="zero_shot"), 24, roomy) == 96
    assert reply_budget(StrategyConfig(name="cot", max_new_tokens=128), 24, roomy) == 128
    assert reply_budget(StrategyConfig(name="zero_shot"), 24, plain) == 24
    assert reply_budget(None, 24, plain) == 24


def test_a_family_suite_holds_one_number_of_terms(tmp_path):
    cfg = base_cfg()
    cfg["data"]["heldout"] = [{**ARITH, "name": "s", "family": "steps"}]
    with pytest.raises(ConfigError, match="exactly one number of terms"):
        load_config(write(tmp_path, cfg))


@pytest.mark.parametrize("name", ["..", ".", ".hidden", "-rf", "a/b"])
def test_names_that_would_be_unsafe_path_components_are_refused(tmp_path, name):
    cfg = base_cfg()
    cfg["variants"] = [{"name": name}]
    with pytest.raises(ConfigError, match="variants.0.name"):
        load_config(write(tmp_path, cfg))
    cfg = base_cfg()
    cfg["data"]["heldout"] = [{**ARITH, "name": name}]
    with pytest.raises(ConfigError, match="heldout.0.name"):
        load_config(write(tmp_path, cfg))
