"""Loaders: one function per file format, each returning `Record`s.

- `load_jsonl`: the benchmark JSONL files (MATH500, AIME, AMC, OlympiadBench, NQ, HotpotQA …):
  the question is ``problem`` or ``question``, the golds ``golden_answers`` (FlashRAG /
  Search-R1), ``answer`` or ``answers`` (a string, a number or a list), the id ``id`` or
  ``unique_id`` (else the line number).
- `load_verl_parquet`: verl's RL format (ToRL, Search-R1): ``prompt`` chat messages,
  ``reward_model.ground_truth``, ``data_source``, ``ability``, ``extra_info``.
- `load_passages`: a passage corpus (``id``, ``title``, ``text``), read by the search service's
  own reader so that the corpus format is defined in one place.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paretopo.datasets.readers import jsonl_rows, parquet_rows
from paretopo.datasets.records import DatasetError, Record, TaskKind, golds_from

if TYPE_CHECKING:
    from paretopo.corpus import Passage

QUESTION_KEYS = ("problem", "question")
GOLD_KEYS = ("golden_answers", "answer", "answers")
ID_KEYS = ("id", "unique_id")

# Search-R1's parquet puts its whole instruction in the user message; the question follows it.
_SEARCH_R1_PREFIX = "Answer the given question."
_SEARCH_R1_QUESTION = "Question: "


def _first(obj: dict[str, Any], keys: tuple[str, ...]) -> tuple[str | None, Any]:
    return next(((k, obj[k]) for k in keys if obj.get(k) not in (None, "")), (None, None))


def _record(
    where: str, raw_id: Any, question: Any, golds: Any, kind: TaskKind, source: str
) -> Record:
    if not isinstance(question, str) or not question.strip():
        raise DatasetError(f"{where}: the question is missing, empty or not a string")
    return Record(
        id=f"{source}/{raw_id}",
        question=question.strip(),
        golds=golds_from(golds, where),
        kind=kind,
        source=source,
    )


def load_jsonl(
    path: Path, *, kind: TaskKind, source: str, limit: int | None = None
) -> list[Record]:
    """Records of a benchmark JSONL file (fields as in the module docstring).

    Raises `DatasetError` naming the file and line of the first record that has no question,
    no gold answer, or a gold of the wrong type.
    """
    records: list[Record] = []
    for lineno, (where, obj) in enumerate(jsonl_rows(path), start=1):
        if limit is not None and len(records) >= limit:
            break
        _, question = _first(obj, QUESTION_KEYS)
        if question is None:
            raise DatasetError(f"{where}: no question (expected one of {', '.join(QUESTION_KEYS)})")
        gold_key, golds = _first(obj, GOLD_KEYS)
        if gold_key is None:
            raise DatasetError(f"{where}: no gold answer (expected one of {', '.join(GOLD_KEYS)})")
        _, raw_id = _first(obj, ID_KEYS)
        records.append(_record(where, lineno if raw_id is None else raw_id, question, golds, kind,
                               source))
    return records


def _user_question(messages: Any, where: str) -> str:
    if not isinstance(messages, list) or not messages:
        raise DatasetError(f"{where}: 'prompt' is not a non-empty list of chat messages")
    users = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users or not isinstance(users[-1], str):
        raise DatasetError(f"{where}: 'prompt' has no user message with string content")
    text = users[-1].strip()
    if text.startswith(_SEARCH_R1_PREFIX) and _SEARCH_R1_QUESTION in text:
        # Keep only the question; our template re-adds the (same) instruction.
        text = text.rsplit(_SEARCH_R1_QUESTION, 1)[1]
    return text


def _verl_kind(row: dict[str, Any]) -> TaskKind:
    # verl's `ability`: "math" (or ToRL's "other") is graded as math; Search-R1 writes
    # "fact-reasoning" for its QA data.
    return TaskKind.QA if str(row.get("ability", "")).endswith("reasoning") else TaskKind.MATH


def load_verl_parquet(
    path: Path, *, source: str, kind: TaskKind | None = None, limit: int | None = None
) -> list[Record]:
    """Records of a verl-format Parquet file (ToRL's and Search-R1's training/test sets).

    The question is the last user message (Search-R1's instruction prefix removed), the golds
    ``reward_model.ground_truth``; the id is ``extra_info.id`` (or ``index``, else the row).
    ``kind`` defaults to what the row's ``ability`` says. ToRL's test set repeats AIME rows
    with the same id on purpose (4 samples each), so ids are not required to be unique.
    """
    records: list[Record] = []
    for i, (where, row) in enumerate(parquet_rows(path)):
        if limit is not None and len(records) >= limit:
            break
        reward_model = row.get("reward_model")
        if not isinstance(reward_model, dict) or reward_model.get("ground_truth") is None:
            raise DatasetError(f"{where}: no reward_model.ground_truth")
        extra = row.get("extra_info") if isinstance(row.get("extra_info"), dict) else {}
        raw_id = extra.get("id", extra.get("index", i))
        question = _user_question(row.get("prompt"), where)
        records.append(_record(where, raw_id, question, reward_model["ground_truth"],
                               kind or _verl_kind(row), source))
    return records


def load_passages(path: Path, *, limit: int | None = None) -> Iterator[Passage]:
    """The passages of a corpus JSONL (``id``, ``title``, ``text``), validated line by line.

    Reads with the search service's `read_corpus` (one definition of the corpus format); its
    errors come out as `DatasetError`, naming the file and line.
    """
    from paretopo.corpus import CorpusError, read_corpus

    try:
        yield from read_corpus(Path(path), limit=limit)
    except CorpusError as err:
        raise DatasetError(str(err)) from err
    except OSError as err:
        raise DatasetError(f"{path}: cannot open ({err.strerror})") from err
