"""The tag strings and the one prompt template per task, shared by SFT, rollout and evaluation.

Every other module imports the tags from here, so a tag is spelled in exactly one place. The
templates are deliberately short: the testbed policy reads characters, and every character of
the instructions costs context and CPU time in SFT and rollout alike.
"""

from __future__ import annotations

from enum import StrEnum


class TaskName(StrEnum):
    """The two testbed tasks: `calc` (Python tool, the paper's math setting) and `kbqa`
    (search tool, the paper's QA setting)."""

    CALC = "calc"
    KBQA = "kbqa"


PYTHON_OPEN = "<python>"
PYTHON_CLOSE = "</python>"
OUTPUT_OPEN = "<output>"
OUTPUT_CLOSE = "</output>"
SEARCH_OPEN = "<search>"
SEARCH_CLOSE = "</search>"
INFORMATION_OPEN = "<information>"
INFORMATION_CLOSE = "</information>"
ANSWER_OPEN = "<answer>"
ANSWER_CLOSE = "</answer>"

#: Every tag, in a fixed order (the tokenizer gives each one a single token id in this order).
TAGS: tuple[str, ...] = (
    PYTHON_OPEN,
    PYTHON_CLOSE,
    OUTPUT_OPEN,
    OUTPUT_CLOSE,
    SEARCH_OPEN,
    SEARCH_CLOSE,
    INFORMATION_OPEN,
    INFORMATION_CLOSE,
    ANSWER_OPEN,
    ANSWER_CLOSE,
)

#: Tags after which the agent loop stops generating and acts (runs a tool or ends).
STOP_TAGS: tuple[str, ...] = (PYTHON_CLOSE, SEARCH_CLOSE, ANSWER_CLOSE)

TEMPLATES: dict[TaskName, str] = {
    TaskName.CALC: (
        f"Tools: {PYTHON_OPEN}code{PYTHON_CLOSE} prints to {OUTPUT_OPEN}{OUTPUT_CLOSE}. "
        f"Reply {ANSWER_OPEN}number{ANSWER_CLOSE}.\nQ: {{question}}\n"
    ),
    TaskName.KBQA: (
        f"Tools: {SEARCH_OPEN}query{SEARCH_CLOSE} returns {INFORMATION_OPEN}{INFORMATION_CLOSE}. "
        f"Reply {ANSWER_OPEN}name{ANSWER_CLOSE}.\nQ: {{question}}\n"
    ),
}


def render_prompt(task: TaskName | str, question: str) -> str:
    """The exact text the policy sees before it generates.

    Examples
    --------
    >>> render_prompt("calc", "What is 2 + 3?").endswith("Q: What is 2 + 3?\\n")
    True
    """
    return TEMPLATES[TaskName(task)].format(question=question)
