"""Deterministic, disjoint-by-construction train/validation/test splits.

An item's split is a pure function of a canonical form of its question (a hash), never of the
order in which a generator produced it. So the same question always lands in the same split,
whatever the seed or the number of items asked for, and two splits can never share a question.
Generators pass a canonical form that identifies equivalent questions (for instance `3 + 8` and
`8 + 3`), so even a paraphrase or a commuted sum of a training question cannot leak into
validation or test.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum


class Split(StrEnum):
    TRAIN = "train"
    VALIDATION = "validation"
    TEST = "test"


#: Share of the hash space, in percent, given to each split (80 / 10 / 10).
_BOUNDS: tuple[tuple[Split, int], ...] = (
    (Split.TRAIN, 80),
    (Split.VALIDATION, 90),
    (Split.TEST, 100),
)


def split_of(canonical: str) -> Split:
    """The split a question belongs to, from its canonical form.

    Examples
    --------
    >>> split_of("calc:3+8") == split_of("calc:3+8")
    True
    """
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    bucket = int.from_bytes(digest[:8], "big") % 100
    for split, bound in _BOUNDS:
        if bucket < bound:
            return split
    raise AssertionError("unreachable: the last bound is 100")


def item_id(canonical: str) -> str:
    """A short stable id for an item (the first 12 hex digits of the canonical form's hash)."""
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]
