"""The one place where tool output is wrapped for the agent's context.

The rollout service appends these blocks after a tool call; the search service returns the
`<information>` block ready-made, so the agent sees the same text whichever side formats it.
Search-R1 style (its `_passages2string`): one line per passage, numbered from 1,
``Doc 1(Title: "Citibank") The City Bank of New York was founded ...``.

Pure functions, no I/O.

>>> from types import SimpleNamespace as P
>>> print(wrap_information(format_passages([P(title="Tea", text="A drink."),
...                                         P(title="Cup", text="Holds tea.")])))
<information>Doc 1(Title: "Tea") A drink.
Doc 2(Title: "Cup") Holds tea.</information>
>>> wrap_output("4\\n")
'<output>4\\n</output>'
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class TitledText(Protocol):
    """Anything with a title and a text (a protobuf `Passage`, a dataclass, ...)."""

    @property
    def title(self) -> str: ...

    @property
    def text(self) -> str: ...


def format_passages(passages: Iterable[TitledText]) -> str:
    """Search-R1 text of retrieved passages, best first: ``Doc i(Title: "t") text`` lines.

    Parameters
    ----------
    passages
        Retrieved passages in rank order.

    Returns
    -------
    str
        One line per passage joined by newlines; the empty string for no passages.
    """
    return "\n".join(
        f'Doc {rank}(Title: "{p.title}") {p.text}' for rank, p in enumerate(passages, start=1)
    )


def wrap_information(text: str) -> str:
    """The search tool's block: ``<information>text</information>`` (text stripped)."""
    return f"<information>{text.strip()}</information>"


def wrap_output(text: str) -> str:
    """The Python tool's block: ``<output>text</output>`` (text kept verbatim)."""
    return f"<output>{text}</output>"
