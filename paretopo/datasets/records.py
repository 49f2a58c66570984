"""The one record type every benchmark loads into, and the error a bad file raises."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from paretopo.answers import gold_text
from paretopo.errors import InvalidArgument


class DatasetError(InvalidArgument, ValueError):
    """A benchmark file that cannot be read; the message names the file and the line or row."""


class TaskKind(StrEnum):
    """How a record is graded: `math` (math-verify equivalence) or `qa` (SQuAD exact match)."""

    MATH = "math"
    QA = "qa"


class Record(BaseModel):
    """One benchmark question with every gold answer it accepts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, description="Unique within a run: '<source>/<id in the file>'.")
    question: str = Field(min_length=1, description="The question text alone, no instructions.")
    golds: list[str] = Field(min_length=1, description="Accepted answers, as text.")
    kind: TaskKind = Field(description="Grading: math equivalence or normalised exact match.")
    source: str = Field(min_length=1, description="Benchmark or data source the record came from.")


def golds_from(value: Any, where: str) -> list[str]:
    """Gold answers as a non-empty list of non-empty strings.

    Accepts a string, a number (an integral float such as AMC's ``27.0`` becomes ``"27"``), a
    list of those, or Search-R1's ``{"target": [...]}``; anything else raises `DatasetError`
    naming `where`.

    Examples
    --------
    >>> golds_from(27.0, "x"), golds_from(["a", " b "], "x"), golds_from({"target": "c"}, "x")
    (['27'], ['a', 'b'], ['c'])
    """
    if isinstance(value, dict) and "target" in value:
        return golds_from(value["target"], where)
    items = list(value) if isinstance(value, list | tuple) else [value]
    golds = []
    for item in items:
        # bool is an int subclass, and a True gold is a data error, not the answer "1".
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise DatasetError(f"{where}: gold answer {item!r} is not a string or a number")
        text = gold_text(item)
        if not text:
            raise DatasetError(f"{where}: empty gold answer")
        golds.append(text)
    if not golds:
        raise DatasetError(f"{where}: no gold answer")
    return golds
