"""Unknown and malformed records fail with the file and the line (or row) named."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from paretopo.datasets import (
    DatasetError,
    TaskKind,
    golds_from,
    load_benchmark,
    load_file,
    load_jsonl,
    load_passages,
    load_verl_parquet,
)


def _write(path, *lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


GOOD = json.dumps({"problem": "1+1?", "answer": "2"})


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{not json", "line 3: not valid JSON"),
        ("[1, 2]", "line 3: expected a JSON object"),
        (json.dumps({"answer": "2"}), "line 3: no question"),
        (json.dumps({"problem": "x"}), "line 3: no gold answer"),
        (json.dumps({"problem": "x", "answer": True}), "line 3: gold answer True"),
        (json.dumps({"problem": "x", "answer": {"a": 1}}), "line 3: gold answer"),
        (json.dumps({"problem": "x", "answer": []}), "line 3: no gold answer"),
        (json.dumps({"problem": "x", "answer": ["ok", "  "]}), "line 3: empty gold answer"),
        (json.dumps({"problem": 7, "answer": "2"}), "line 3: the question is missing"),
    ],
)
def test_malformed_jsonl_names_file_and_line(tmp_path, bad_line, message):
    # Line 2 is blank: line numbers count every line of the file.
    path = _write(tmp_path / "bench.jsonl", GOOD, "", bad_line)
    with pytest.raises(DatasetError) as err:
        load_jsonl(path, kind=TaskKind.MATH, source="bench")
    assert str(path) in str(err.value) and message in str(err.value)


def test_invalid_utf8_is_named(tmp_path):
    path = tmp_path / "bench.jsonl"
    path.write_bytes(GOOD.encode() + b"\n" + b'{"problem": "\xff", "answer": "1"}\n')
    with pytest.raises(DatasetError, match="line 2: not valid UTF-8"):
        load_jsonl(path, kind=TaskKind.MATH, source="bench")


def test_golds_normalise_strings_numbers_lists_and_targets():
    assert golds_from(" 5 ", "w") == ["5"]
    assert golds_from(27.0, "w") == ["27"]
    assert golds_from(2.5, "w") == ["2.5"]
    assert golds_from(3, "w") == ["3"]
    assert golds_from(["a", 1.0], "w") == ["a", "1"]
    assert golds_from({"target": ["x", "y"]}, "w") == ["x", "y"]
    with pytest.raises(DatasetError, match=r"^w: gold answer None"):
        golds_from(None, "w")


def _verl_table(rows):
    return pa.Table.from_pylist(rows)


def test_verl_parquet_rows_and_errors(tmp_path):
    good = {
        "data_source": "nq",
        "prompt": [{"role": "user", "content": "Answer the given question. You must ... "
                    "For example, <answer> Beijing </answer>. Question: who wrote hamlet?\n"}],
        "ability": "fact-reasoning",
        "reward_model": {"ground_truth": {"target": ["Shakespeare"]}, "style": "rule"},
        "extra_info": {"index": 4, "split": "test"},
    }
    path = tmp_path / "train.parquet"
    pq.write_table(_verl_table([good]), path)
    (rec,) = load_verl_parquet(path, source="nq")
    assert rec.question == "who wrote hamlet?"  # Search-R1's instruction prefix removed
    assert rec.golds == ["Shakespeare"] and rec.kind is TaskKind.QA and rec.id == "nq/4"

    bad = dict(good, reward_model={"ground_truth": None, "style": "rule"})
    pq.write_table(_verl_table([good, bad]), path)
    with pytest.raises(DatasetError, match=r"train\.parquet row 1: no reward_model"):
        load_verl_parquet(path, source="nq")

    no_user = dict(good, prompt=[{"role": "system", "content": "hi"}])
    pq.write_table(_verl_table([no_user]), path)
    with pytest.raises(DatasetError, match="row 0: 'prompt' has no user message"):
        load_verl_parquet(path, source="nq")


def test_not_parquet_and_unknown_types(tmp_path):
    fake = tmp_path / "x.parquet"
    fake.write_text("not parquet")
    with pytest.raises(DatasetError, match="not a readable Parquet file"):
        load_file(fake)
    with pytest.raises(DatasetError, match="unknown benchmark file type"):
        load_file(_write(tmp_path / "x.csv", "a,b"))
    with pytest.raises(DatasetError, match="unknown benchmark 'nope'; known: math500"):
        load_benchmark("nope")
    with pytest.raises(DatasetError, match="benchmark 'math500' not found; set PARETOPO"):
        load_benchmark("math500", data_dir=tmp_path)


def test_corpus_errors_come_from_the_search_reader(tmp_path):
    path = _write(tmp_path / "c.jsonl", json.dumps({"id": "1", "title": "t", "text": "x"}),
                  json.dumps({"id": "2", "title": "t"}))
    with pytest.raises(DatasetError, match=r"c\.jsonl line 2: field 'text'"):
        list(load_passages(path))
    with pytest.raises(DatasetError, match="cannot open"):
        list(load_passages(tmp_path / "missing.jsonl"))
