
import json
import re
import pytest

from driftlab.config import DataConfig
from driftlab.data import build_data
from driftlab.data.build import normalize, shared_prefix
from driftlab.data.sources import jsonl_items
from driftlab.errors import DataError
from tests.conftest import ARITH


def arith_cfg(**over):
    return DataConfig(target={**ARITH, "size": 30, "train_size": 60, **over})


def test_build_is_deterministic_for_a_seed():
    a, b = build_data(arith_cfg(), seed=3), build_data(arith_cfg(), seed=3)
    assert a.train == b.train and a.suites == b.suites
    c = build_data(arith_cfg(), seed=4)
    assert c.suites["arithmetic"] != a.suites["arithmetic"]


def test_train_and_eval_do_not_overlap_and_sizes_hold():
    bundle = build_data(arith_cfg(), seed=0)
    assert len(bundle.train) == 60 and len(bundle.suites["arithmetic"]) == 30
    train = {normalize(it["question"]) for it in bundle.train}
    assert not train & {normalize(it["question"]) for it in bundle.suites["arithmetic"]}
    assert bundle.report["contamination"]["train_eval_overlap_after_removal"] == 0
    item = bundle.train[0]
    assert item["completion"] == f"Answer: {item['answer']}"
    assert item["prompt"].startswith(item["question"]) and "Answer: <number>" in item["prompt"]


def test_contamination_with_a_heldout_file_is_removed_and_reported(jsonl_file):
    # A held-out file that contains some of the training questions: they must leave the train set.
    probe = build_data(arith_cfg(), seed=0)
    leaked = [{"question": it["question"], "answer": it["answer"]} for it in probe.train[:5]]
    path = jsonl_file(leaked + [{"question": "unrelated?", "answer": "x"}])
    cfg = DataConfig(target={**ARITH, "size": 30, "train_size": 55},
                     heldout=[{"name": "leak", "source": "jsonl", "path": str(path), "size": 6}])
    bundle = build_data(cfg, seed=0)
    assert bundle.report["contamination"]["removed_from_train"]["leak"] == 5
    assert bundle.report["contamination"]["train_eval_overlap_after_removal"] == 0
    assert len(bundle.train) == 55


def test_jsonl_target_splits_without_overlap(jsonl_file):
    rows = [{"question": f"q{i}?", "answer": str(i)} for i in range(40)] + [{"question": "Q0?", "answer": "0"}]
    path = jsonl_file(rows)
    cfg = DataConfig(target={"name": "mine", "source": "jsonl", "path": str(path), "size": 10, "train_size": 30})
    bundle = build_data(cfg, seed=1)
    assert len(bundle.suites["mine"]) == 10 and len(bundle.train) == 30
    assert not {normalize(i["question"]) for i in bundle.train} & {normalize(i["question"]) for i in bundle.suites["mine"]}


def test_malformed_jsonl_names_file_and_line(jsonl_file):
    path = jsonl_file([{"question": "a?", "answer": "1"}, '{"question": "b?", "answer": ', {"question": "c?"}])
    cfg = DataConfig(target={**ARITH, "size": 5, "train_size": 5},
                     heldout=[{"name": "mine", "source": "jsonl", "path": str(path)}])
    with pytest.raises(DataError, match=rf"{path}:2: not valid JSON"):
        build_data(cfg, seed=0)


def test_missing_field_and_skip_mode(jsonl_file):
    path = jsonl_file([{"question": "a?", "answer": "1"}, {"question": "c?"}, "[1, 2]", {"question": "d?", "answer": 4}])
    strict = DataConfig(target={**ARITH, "size": 5, "train_size": 5},
                        heldout=[{"name": "mine", "source": "jsonl", "path": str(path)}])
    with pytest.raises(DataError, match=rf"{path}:2: missing field 'answer'"):
        build_data(strict, seed=0)
    lenient = strict.model_copy(update={"on_bad_row": "skip"})
    bundle = build_data(lenient, seed=0)
    assert bundle.report["skipped_bad_rows"]["mine"] == 2
    assert [it["answer"] for it in bundle.suites["mine"]] == ["1", "4"]


def test_unknown_task_is_one_clear_error():
    with pytest.raises(DataError, match=r"config key 'data.target': unknown reasoning-gym task 'basic_arithmatic'.*"
                                        r"Did you mean: basic_arithmetic"):
        build_data(arith_cfg(task="basic_arithmatic"), seed=0)


def test_loglik_choices(jsonl_file):
    path = jsonl_file([{"question": "2+2?", "answer": "4", "choices": ["3", "4"]}])
    cfg = DataConfig(target={**ARITH, "size": 5, "train_size": 5}, heldout=[
        {"name": "mc", "source": "jsonl", "path": str(path), "mode": "loglik"},
        {"name": "near", "source": "reasoning_gym", "task": "basic_arithmetic", "mode": "loglik",
         "choices": "numeric_nearby", "size": 10, "task_kwargs": {"min_terms": 2, "max_terms": 2}},
    ])
    bundle = build_data(cfg, seed=0)
    assert bundle.suites["mc"][0]["choices"] == ["3", "4"]
    for it in bundle.suites["near"]:
        assert it["answer"] in it["choices"] and len(set(it["choices"])) == 4


def test_a_suites_shared_prefix_ends_at_a_word_boundary(jsonl_file):
    assert shared_prefix(["In which country is the city of Sana?", "In which country is the city of Sucre?"]) \
        == "In which country is the city of"  # not "... of S": the last word may go on differently
    assert shared_prefix(['The word "take"?', 'The word "tame"?']) == "The word"
    assert shared_prefix(["abc", "abd"]) == shared_prefix(["only one"]) == ""
    rows = [{"question": f"What comes after {w}?", "answer": "x", "choices": ["x", "y"]} for w in ("one", "two")]
    cfg = DataConfig(target={**ARITH, "size": 5, "train_size": 5}, heldout=[
        {"name": "mc", "source": "jsonl", "path": str(jsonl_file(rows)), "mode": "loglik",
         "template": "Q: {question}"}])
    suite = build_data(cfg, seed=0).suites["mc"]
    assert [it["shared_prefix"] for it in suite] == ["Q: What comes after"] * 2  # template and items together
    target = build_data(cfg, seed=0).suites["arithmetic"]  # generate suites too (reasoning-gym: "Calculate ...")
    assert len({it["shared_prefix"] for it in target}) == 1 and all(
        it["prompt"].startswith(it["shared_prefix"]) for it in target)


def test_choices_not_containing_answer_is_an_error(jsonl_file):
    path = jsonl_file([{"question": "2+2?", "answer": "5", "choices": ["3", "4"]}])
    cfg = DataConfig(target={**ARITH, "size": 5, "train_size": 5},
                     heldout=[{"name": "mc", "source": "jsonl", "path": str(path), "mode": "loglik"}])
    with pytest.raises(DataError, match=r":1: 'answer' '5' is not one of 'choices'"):
        build_data(cfg, seed=0)


def test_csv_suite_with_choices_and_a_bad_row(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text('question,answer,choices,source\n"Capital of France, please?",Paris,Rome|Paris,atlas\n'
                    "Two plus two?,4,,book\nbroken row only\n")
    strict = DataConfig(target={**ARITH, "size": 5, "train_size": 5},
                        heldout=[{"name": "mine", "source": "csv", "path": str(path), "mode": "generate"}])
    with pytest.raises(DataError, match=rf"{path}:4: wrong number of fields"):
        build_data(strict, seed=0)
    bundle = build_data(strict.model_copy(update={"on_bad_row": "skip"}), seed=0)
    rows = bundle.suites["mine"]
    assert [r["question"] for r in rows] == ["Capital of France, please?", "Two plus two?"]
    assert rows[0]["meta"] == {"source": "atlas"} and bundle.report["skipped_bad_rows"]["mine"] == 1


def test_csv_without_required_columns(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("prompt,label\na,b\n")
    cfg = DataConfig(target={**ARITH, "size": 5, "train_size": 5},
                     heldout=[{"name": "bad", "source": "csv", "path": str(path)}])
    with pytest.raises(DataError, match=r"bad.csv:1: header lacks column\(s\) \['answer', 'question'\]"):
        build_data(cfg, seed=0)


def test_a_multi_step_family_from_a_file_picks_the_rows_with_each_number_of_terms(jsonl_file):
    rows = [{"question": f"Calculate {a} + {' + '.join(['1'] * (k - 1))}.", "answer": str(a + k - 1), "terms": k}
            for k in (2, 3) for a in range(10, 30)]
    path = jsonl_file(rows)
    cfg = DataConfig(target={**ARITH, "size": 5, "train_size": 5}, heldout=[
        {"name": "steps", "source": "jsonl", "path": str(path), "terms": [2, 3], "size": 8}])
    bundle = build_data(cfg, seed=0)
    for k in (2, 3):
        items = bundle.suites[f"steps_{k}"]
        assert len(items) == 8 and all(it["question"].count("+") == k - 1 for it in items)
    cfg = DataConfig(target={**ARITH, "size": 5, "train_size": 5}, heldout=[
        {"name": "steps", "source": "jsonl", "path": str(path), "terms": [2, 4], "size": 8}])
    with pytest.raises(DataError, match=r"items\.jsonl: no rows with 'terms' = 4"):
        build_data(cfg, seed=0)


def test_files_saved_with_a_byte_order_mark_and_crlf_line_ends_are_read(tmp_path):
    """Issue 18: Windows editors write a UTF-8 BOM and CRLF; both JSONL and CSV read the same rows as plain files."""
    from driftlab.data.sources import csv_items, jsonl_items

    rows = [{"question": "What is 1 + 1?", "answer": "2"}, {"question": "Capital of France?", "answer": "Paris"}]
    plain = jsonl_items(_write(tmp_path / "plain.jsonl", "".join(json.dumps(r) + "\n" for r in rows)))
    windows = jsonl_items(_write(tmp_path / "win.jsonl", "\ufeff" + "".join(json.dumps(r) + "\r\n" for r in rows)))
    assert windows == plain
    csv_text = "question,answer\r\nWhat is 1 + 1?,2\r\nCapital of France?,Paris\r\n"
    assert csv_items(_write(tmp_path / "win.csv", "\ufeff" + csv_text)) == csv_items(_write(tmp_path / "p.csv", csv_text))
    assert csv_items(_write(tmp_path / "p2.csv", csv_text))[0][0]["question"] == "What is 1 + 1?"
    with pytest.raises(DataError, match=r"win2\.jsonl:2: not valid JSON"):  # a BOM is only skipped at the start
        jsonl_items(_write(tmp_path / "win2.jsonl", json.dumps(rows[0]) + "\n\ufeff" + json.dumps(rows[1]) + "\n"))


def test_an_oversized_field_or_line_is_one_clear_error(tmp_path):
    """Issue 18: a 50 MB question was accepted and copied into every record. A field over MAX_FIELD_CHARS, or a JSONL
    line over MAX_LINE_BYTES (a huge extra field), names the file, the line and the limit — in JSONL and in CSV."""
    import csv

    from driftlab.data.sources import MAX_FIELD_CHARS, MAX_LINE_BYTES, csv_items, jsonl_items, prompt_items

    ok = json.dumps({"question": "What is 1 + 1?", "answer": "2"}) + "\n"
    long_q = json.dumps({"question": "x" * (MAX_FIELD_CHARS + 1), "answer": "2"}) + "\n"
    with pytest.raises(DataError, match=r"long\.jsonl:2: question of 100,001 characters; the limit .* 100,000"):
        jsonl_items(_write(tmp_path / "long.jsonl", ok + long_q))
    with pytest.raises(DataError, match=r"choice\.jsonl:1: a choice of"):
        jsonl_items(_write(tmp_path / "choice.jsonl", json.dumps(
            {"question": "q", "answer": "a", "choices": ["a", "b" * (MAX_FIELD_CHARS + 1)]}) + "\n"))
    meta = json.dumps({"question": "q", "answer": "a", "notes": "n" * MAX_LINE_BYTES}) + "\n"
    with pytest.raises(DataError, match=r"meta\.jsonl:1: line of 1,000,0\d\d bytes; the limit is 1,000,000"):
        jsonl_items(_write(tmp_path / "meta.jsonl", meta))
    with pytest.raises(DataError, match=r"prompts\.jsonl:1: question of"):
        prompt_items(_write(tmp_path / "prompts.jsonl", long_q))
    assert jsonl_items(_write(tmp_path / "limit.jsonl", json.dumps(
        {"question": "x" * MAX_FIELD_CHARS, "answer": "2"}) + "\n"))[0][0]["question"] == "x" * MAX_FIELD_CHARS
    before = csv.field_size_limit()
    with pytest.raises(DataError, match=r"long\.csv:3: field larger than field limit"):
        csv_items(_write(tmp_path / "long.csv", "question,answer\nq,1\n" + "y" * (MAX_FIELD_CHARS + 1) + ",2\n"))
    assert csv.field_size_limit() == before  # the process-wide limit is put back


def _write(path, text: str):
    path.write_bytes(text.encode("utf-8"))
    return path


def _study(tmp_path, variants):
    from driftlab.config import StudyConfig

    return StudyConfig.model_validate({
        "name": "t", "model": {"name_or_path": "embedded"}, "runs_dir": str(tmp_path),
        "data": {"target": {**ARITH, "size": 20, "train_size": 30},
                 "heldout": [{**ARITH, "name": "three_digit", "size": 20,
                              "task_kwargs": {**ARITH["task_kwargs"], "min_digits": 3, "max_digits": 3}}]},
        "variants": variants})


def test_a_variant_trains_on_its_own_items_drawn_like_the_targets_and_checked_against_every_eval_item(tmp_path):
    from driftlab.data.build import variant_items

    hard = {"task_kwargs": {**ARITH["task_kwargs"], "min_digits": 3, "max_digits": 3}, "train_size": 25}
    cfg = _study(tmp_path, [{"name": "easy"}, {"name": "hard", "train": {"items": hard}}])
    bundle = build_data(cfg.data, cfg.seed)
    easy_suite, easy = variant_items(cfg, cfg.variant_train(cfg.variants[0]), "k", bundle)
    hard_suite, items = variant_items(cfg, cfg.variant_train(cfg.variants[1]), "k", bundle)
    assert easy is bundle.train and easy_suite is cfg.data.target
    assert len(items) == 25 and hard_suite.name == "arithmetic" and hard_suite.template == ARITH["template"]
    assert all(it["meta"]["num_digits"] == 3 for it in items)  # the changed generator setting
    assert all(it["meta"]["num_digits"] == 2 for it in easy)
    assert items == variant_items(cfg, cfg.variant_train(cfg.variants[1]), "k", bundle)[1]  # deterministic


def test_a_variants_own_items_that_are_also_eval_items_are_dropped(tmp_path):
    """One-digit a +- b has ~200 distinct questions, so a draw of 60 meets the 60 eval items of a one-digit suite."""
    from driftlab.data.build import _train_split, variant_items

    one = {**ARITH["task_kwargs"], "min_digits": 1, "max_digits": 1}
    cfg = _study(tmp_path, [{"name": "v", "train": {"items": {"task_kwargs": one, "train_size": 60}}}])
    cfg.data.heldout[0].task_kwargs, cfg.data.heldout[0].size = one, 60
    bundle = build_data(cfg.data, cfg.seed)
    evals = {normalize(it["question"]) for it in bundle.suites["three_digit"]}
    _, items = variant_items(cfg, cfg.variant_train(cfg.variants[0]), "k", bundle)
    assert len(items) == 60 and not evals & {normalize(it["question"]) for it in items}
    suite = cfg.train_target(cfg.variant_train(cfg.variants[0]))
    _, overlap = _train_split(suite, "k", cfg.seed, "error", {"three_digit": evals})
    assert overlap["three_digit"] > 0  # there was something to drop


def test_a_relative_items_path_is_read_beside_the_config(tmp_path):
    import yaml

    from driftlab.config import load_config

    (tmp_path / "mine.jsonl").write_text("".join(json.dumps({"question": f"q{i}?", "answer": str(i)}) + "\n"
                                                 for i in range(40)))
    cfg = _study(tmp_path, []).model_dump(mode="json")
    cfg["variants"] = [{"name": "v", "train": {"items": {"source": "jsonl", "path": "mine.jsonl",
                                                         "train_size": 30}}}]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    loaded = load_config(tmp_path / "c.yaml")
    assert loaded.train_target(loaded.variant_train(loaded.variants[0])).path == tmp_path / "mine.jsonl"
    from driftlab.data.build import variant_items

    _, items = variant_items(loaded, loaded.variant_train(loaded.variants[0]), "k", build_data(loaded.data, 0))
    assert len(items) == 30 and {it["question"] for it in items} <= {f"q{i}?" for i in range(40)}


@pytest.mark.parametrize("items, message", [
    ({"task_kwargs": {"min_digits": 3}, "sise": 5}, r"config key 'variants.0.train.items.sise'"),
    ({"name": "other"}, r"'variants.0.train.items.name': not a key of training items"),
    ({"perturb": ["renumber"]}, r"'variants.0.train.items.perturb': not a key of training items"),
    ({"mode": "loglik", "choices": "numeric_nearby"}, r"'variants.0.train.items.mode': grpo needs replies"),
])
def test_bad_train_items_are_one_error_naming_the_key(tmp_path, items, message):
    import yaml

    from driftlab.config import load_config
    from driftlab.errors import ConfigError

    cfg = _study(tmp_path, []).model_dump(mode="json")
    cfg["variants"] = [{"name": "v", "train": {"objective": "grpo", "items": items}}]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "c.yaml")


def test_trl_prompt_completion_and_messages_rows_are_read_as_written(tmp_path):
    """TRL's formats: the last user message is the question, the final assistant message is what the fine-tune
    is trained to write (as written), its 'Answer:' line the gold answer; without train_size, every row left after
    the eval items trains."""
    rows = []
    for i in range(30):
        chain = f"{i} + 1 = {i + 1}\nAnswer: {i + 1}"
        rows.append({"prompt": f"What is {i} + 1?", "completion": chain} if i % 2 else
                    {"messages": [{"role": "system", "content": "Be brief."},
                                  {"role": "user", "content": f"What is {i} + 1?"},
                                  {"role": "assistant", "content": chain}]})
    path = tmp_path / "trl.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    bundle = build_data(DataConfig(target={"name": "mine", "source": "jsonl", "path": str(path), "size": 10}), 0)
    assert len(bundle.suites["mine"]) == 10 and len(bundle.train) == 20  # train_size unset: the rest of the file
    for it in bundle.train + bundle.suites["mine"]:
        n = int(it["question"].split()[2])
        assert it["answer"] == str(n + 1) and it["completion"] == f"{n} + 1 = {n + 1}\nAnswer: {n + 1}"


def test_a_fields_mapping_reads_other_column_names(tmp_path):
    from driftlab.data.sources import csv_items

    (tmp_path / "a.jsonl").write_text(json.dumps({"problem": "2 + 2?", "solution": 4, "level": 1}) + "\n")
    items, _ = jsonl_items(tmp_path / "a.jsonl", fields={"question": "problem", "answer": "solution"})
    assert items == [{"question": "2 + 2?", "answer": "4", "choices": None, "meta": {"level": 1}}]
    (tmp_path / "a.csv").write_text("problem,solution\n2 + 2?,4\n")
    items, _ = csv_items(tmp_path / "a.csv", fields={"question": "problem", "answer": "solution"})
    assert items[0]["question"] == "2 + 2?" and items[0]["answer"] == "4"
    with pytest.raises(DataError, match=r"a.csv:1: header lacks column\(s\) \['answer', 'question'\] \(data.\*.fields"):
        csv_items(tmp_path / "a.csv")
    (tmp_path / "bad.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:1: 'messages' must be a list of chat messages ending with"):
        jsonl_items(tmp_path / "bad.jsonl")


@pytest.mark.parametrize("completion, gold", [
    ("2 + 3 = 5\nAnswer: 5", "5"), ("**Answer:** 5", "5"), ("so\nFinal answer: 7.", "7"),
    ("half\n\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"), ("Bob", "Bob")])
def test_the_gold_answer_of_a_trl_row_comes_from_its_completion(tmp_path, completion, gold):
    (tmp_path / "t.jsonl").write_text(json.dumps({"prompt": "Q?", "completion": completion}) + "\n")
    (item,), _ = jsonl_items(tmp_path / "t.jsonl")
    assert item["answer"] == gold and item["completion"] == completion


@pytest.mark.parametrize("row, message", [
    ({"prompt": "Q?", "completion": "step one\nstep two"}, r"no 'Answer: \.\.\.' line .* give the row an 'answer'"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                   {"role": "user", "content": "Yes"}, {"role": "assistant", "content": "c"}]},
     r"2 'user' messages: only single-turn rows"),
])
def test_a_trl_row_driftlab_cannot_read_faithfully_is_one_error(tmp_path, row, message):
    (tmp_path / "t.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match=r"t.jsonl:1: " + message):
        jsonl_items(tmp_path / "t.jsonl")


def test_trl_rows_with_a_fields_mapping_and_plain_rows_with_a_completion_column(tmp_path):
    (tmp_path / "t.jsonl").write_text(json.dumps({"prompt": "P?", "completion": "Answer: 3", "sol": "4"}) + "\n"
                                      + json.dumps({"question": "Q?", "answer": "1", "completion": "zz"}) + "\n")
    trl, plain = jsonl_items(tmp_path / "t.jsonl", fields={"answer": "sol"})[0]
    assert trl["answer"] == "4" and trl["completion"] == "Answer: 3"  # the mapped column wins over the Answer line
    assert "completion" not in plain and plain["meta"] == {"completion": "zz"}  # not TRL: a column like any other


# --- Parquet files (pyarrow; the same rows, fields mapping and errors as JSONL, rows counted from 1) ---------------

def _parquet(path, rows: list[dict]):
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = list(dict.fromkeys(k for r in rows for k in r))  # from_pylist would take the first row's keys only
    pq.write_table(pa.Table.from_pydict({c: [r.get(c) for r in rows] for c in columns}), path)  # absent: null
    return path


def test_parquet_rows_read_as_the_same_rows_in_jsonl_do(tmp_path):
    from driftlab.data.sources import parquet_items

    chain = "2 + 1 = 3\nAnswer: 3"
    rows = [{"question": "1 + 1?", "answer": "2", "level": 1},
            {"question": "Capital of France?", "answer": "Paris", "choices": ["Paris", "Rome"], "level": 2},
            {"prompt": "What is 2 + 1?", "completion": chain},
            {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 4 + 1?"},
                          {"role": "assistant", "content": "Answer: 5"}]}]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    items, skipped = parquet_items(_parquet(tmp_path / "rows.parquet", rows))
    assert skipped == 0 and items == jsonl_items(tmp_path / "rows.jsonl")[0]
    assert items[2]["answer"] == "3" and items[2]["completion"] == chain and items[3]["question"] == "What is 4 + 1?"
    assert items[1]["choices"] == ["Paris", "Rome"] and items[0]["meta"] == {"level": 1}


def test_parquet_with_a_fields_mapping_from_pandas(tmp_path):
    import pandas as pd

    from driftlab.data.sources import parquet_items

    path = tmp_path / "p.parquet"
    pd.DataFrame({"problem": ["2 + 2?", "3 + 3?"], "solution": [4, 6], "source": ["a", "b"]}).to_parquet(path)
    items, _ = parquet_items(path, fields={"question": "problem", "answer": "solution"})
    assert items == [{"question": "2 + 2?", "answer": "4", "choices": None, "meta": {"source": "a"}},
                     {"question": "3 + 3?", "answer": "6", "choices": None, "meta": {"source": "b"}}]
    with pytest.raises(DataError, match=r"p.parquet: no column\(s\) \['answer', 'question'\] .*data.\*.fields"):
        parquet_items(path)


def test_a_bad_parquet_row_names_the_file_and_the_row(tmp_path):
    import pandas as pd

    from driftlab.data.sources import parquet_items

    path = tmp_path / "bad.parquet"
    pd.DataFrame({"question": ["a?", "b?", " ", "d?"], "answer": ["1", None, "3", "4"]}).to_parquet(path)
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: row 2: missing field 'answer'$"):
        parquet_items(path)  # a null cell is a missing field; rows counted from 1
    items, skipped = parquet_items(path, on_bad_row="skip")
    assert [it["question"] for it in items] == ["a?", "d?"] and skipped == 2  # row 3's question is blank
    trl = _parquet(tmp_path / "trl.parquet", [{"prompt": "Q?", "completion": "Answer: 1"},
                                               {"prompt": "R?", "completion": "step one\nstep two"}])
    with pytest.raises(DataError, match=r"trl.parquet: row 2: no 'Answer: \.\.\.' line"):
        parquet_items(trl)
    (tmp_path / "text.parquet").write_text('{"question": "a?", "answer": "1"}\n')
    with pytest.raises(DataError, match=r"text.parquet: not a readable Parquet file"):
        parquet_items(tmp_path / "text.parquet")


def test_a_parquet_file_is_a_suite_and_a_target_by_its_name(tmp_path):
    """The config's `source` offers jsonl and csv: a path ending in .parquet is read as Parquet under either."""
    rows = [{"prompt": f"What is {i} + 1?", "completion": f"{i} + 1 = {i + 1}\nAnswer: {i + 1}"} for i in range(30)]
    target = _parquet(tmp_path / "train.parquet", rows)
    held = _parquet(tmp_path / "held.parquet", [{"question": f"Spell {w}.", "answer": w} for w in ("cat", "dog")])
    cfg = DataConfig(target={"name": "mine", "source": "jsonl", "path": str(target), "size": 10},
                     heldout=[{"name": "spell", "source": "csv", "path": str(held), "size": 2}])
    bundle = build_data(cfg, seed=0)
    assert len(bundle.suites["mine"]) == 10 and len(bundle.train) == 20
    assert all(it["completion"].endswith(f"Answer: {it['answer']}") for it in bundle.train)
    assert sorted(it["answer"] for it in bundle.suites["spell"]) == ["cat", "dog"]
