"""Per-sequence stop strings: detected on the decoded tail, then cut exactly.

A stop string can be one special token (the testbed's tags), one piece of a word, or spread
over several tokens, so detection decodes text rather than matching ids: after each step the
last few tokens of every running sequence are decoded (one batched call) and searched.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase


class StopStrings:
    """Stop strings of one request, and the token window that can contain one."""

    def __init__(self, stop: Sequence[str]) -> None:
        self.strings = tuple(s for s in stop if s)
        # Every token decodes to at least one character (or a tag), so a stop string of L
        # characters lies within the last L tokens; one more covers a byte split in two.
        self.window = max((len(s) for s in self.strings), default=0) + 1

    def found_in(self, tail_text: str) -> bool:
        return any(s in tail_text for s in self.strings)

    def cut(self, text: str) -> tuple[str, bool]:
        """`text` up to and including the first stop string, and whether one was found."""
        ends = [i + len(s) for s in self.strings if (i := text.find(s)) >= 0]
        return (text[: min(ends)], True) if ends else (text, False)


def tails_with_stop(tokenizer: PreTrainedTokenizerBase, rows: Sequence[Sequence[int]],
                    stops: Sequence[StopStrings]) -> list[bool]:
    """For each row, whether its generated tokens now end in a stop string (batched decode)."""
    tails = [list(ids[-s.window:]) for ids, s in zip(rows, stops, strict=True)]
    texts = tokenizer.batch_decode(tails, skip_special_tokens=False)
    return [s.found_in(t) for s, t in zip(stops, texts, strict=True)]
