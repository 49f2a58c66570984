"""How a tool call and its result look in the agent's text, per tool format.

The rollout service's agent loop and every prompt template read the format from here, so a
tag or a fence is spelled in exactly one place (tags come from `paretopo.testbed.prompts`).
Semantics shared by every format:

- The engine stops generating right after a *stop string* and returns it as part of the
  generated text (the model wrote it, so it is trained on it).
- A call stop string ends a tool call; its request is the text between the last call opener
  and the stop string. The loop executes it and appends `result_text(...)` (never trained on).
- The answer stop string (or end of sequence) ends the trajectory.

Formats:
- `testbed`: `<python>code</python>` → `<output>…</output>` and `<search>q</search>` →
  `<information>…</information>`, answer in `<answer>…</answer>`.
- `search_r1`: Search-R1's tags (search only), top-k passages as `Doc i(Title: …) text`,
  the block set off by blank lines as Search-R1 inserts it
  (``\\n\\n<information>…</information>\\n\\n``); top-3 passages and at most 4 search
  turns in the anchor runs (`default_max_tool_calls`).
- `torl`: ToRL's fences: the model writes ```` ```python\\ncode\\n``` ```` and then
  ```` ```output ````; generation stops there and the loop appends the output and a closing
  fence. The answer is the last `\\boxed{}` before end of sequence. The output is
  post-processed as ToRL does (its ``vllm_rollout_spmd.postproc_observation``): an error
  keeps only its last line (``NameError: name 'a' is not defined``), and an output of 256
  characters or more keeps its first and last 128 joined by ``...``. ToRL's released
  scripts allow C = 1 call (`default_max_tool_calls`). Two ToRL details are not reproduced:
  ToRL's sandbox shows an empty output as a time-out message (ours stays empty), and ToRL
  keeps generating without tools after the C-th call (the rollout loop ends there).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from paretopo.testbed.prompts import (
    ANSWER_CLOSE,
    PYTHON_CLOSE,
    PYTHON_OPEN,
    SEARCH_CLOSE,
    SEARCH_OPEN,
)
from paretopo.tools_format import wrap_information, wrap_output


class ToolName(StrEnum):
    PYTHON = "python"
    SEARCH = "search"


@dataclass(frozen=True)
class CallSyntax:
    """One tool's call: the opener the model writes, and the stop string that closes it."""

    tool: ToolName
    opener: str
    stop: str
    # Text the model writes between the request and the stop string (ToRL's closing fence).
    request_suffix: str = ""

    def request(self, text: str) -> str | None:
        """The request of the call that `text` (ending with `stop`) just closed; None when
        the model closed a call it never opened."""
        body = text.removesuffix(self.stop)
        start = body.rfind(self.opener)
        if start < 0:
            return None
        request = body[start + len(self.opener):]
        suffix = self.request_suffix.strip()
        stripped = request.rstrip()
        if suffix and stripped.endswith(suffix):
            request = stripped[: -len(suffix)]
        return request.strip()


@dataclass(frozen=True)
class ToolFormat:
    name: str
    calls: tuple[CallSyntax, ...]
    answer_stop: str | None  # None: the trajectory ends at end of sequence
    max_output_chars: int  # tool output longer than this is cut (see `truncation`)
    boxed_answer: bool = False  # the answer is the last \boxed{} rather than a tag
    # "head": keep the first max_output_chars, marked; "head_tail" (ToRL): output of
    # max_output_chars or more keeps its first and last half joined by "...".
    truncation: Literal["head", "head_tail"] = "head"
    error_last_line: bool = False  # output containing "Error" keeps its last line (ToRL)
    result_padding: str = ""  # set around a result block (Search-R1: a blank line)
    default_max_tool_calls: int | None = None  # the anchor's own limit, when it has one

    @property
    def stop_strings(self) -> tuple[str, ...]:
        stops = tuple(c.stop for c in self.calls)
        return stops + ((self.answer_stop,) if self.answer_stop else ())

    def call_closed_by(self, text: str) -> CallSyntax | None:
        """The call syntax whose stop string `text` ends with, if any."""
        return next((c for c in self.calls if text.endswith(c.stop)), None)

    def result_text(self, call: CallSyntax, output: str) -> str:
        """What the loop appends after a call: the tool's output, cut and wrapped."""
        output = self._cut(output)
        if call.tool is ToolName.SEARCH:
            block = wrap_information(output)
        elif self.name == TORL.name:
            block = f"\n{output}\n```\n"
        else:
            block = wrap_output(output)
        return f"{self.result_padding}{block}{self.result_padding}"

    def _cut(self, output: str) -> str:
        if self.error_last_line and "Error" in output:
            # A traceback's last line names the error; the rest is noise in the context.
            output = output.strip().split("\n")[-1]
        if self.truncation == "head_tail":
            output = output.strip()
            if len(output) >= self.max_output_chars:
                half = self.max_output_chars // 2
                output = output[:half] + "..." + output[-half:]
        elif len(output) > self.max_output_chars:
            output = output[: self.max_output_chars] + "…[truncated]"
        return output


TESTBED = ToolFormat(
    name="testbed",
    calls=(
        CallSyntax(ToolName.PYTHON, PYTHON_OPEN, PYTHON_CLOSE),
        CallSyntax(ToolName.SEARCH, SEARCH_OPEN, SEARCH_CLOSE),
    ),
    answer_stop=ANSWER_CLOSE,
    max_output_chars=200,
)

SEARCH_R1 = ToolFormat(
    name="search_r1",
    calls=(CallSyntax(ToolName.SEARCH, SEARCH_OPEN, SEARCH_CLOSE),),
    answer_stop=ANSWER_CLOSE,
    # Search-R1 cuts an observation at 500 tokens; top-3 100-word passages fit in this.
    max_output_chars=4096,
    result_padding="\n\n",
    default_max_tool_calls=4,
)

TORL = ToolFormat(
    name="torl",
    calls=(CallSyntax(ToolName.PYTHON, "```python", "```output", request_suffix="```"),),
    answer_stop=None,
    max_output_chars=256,
    boxed_answer=True,
    truncation="head_tail",
    error_last_line=True,
    default_max_tool_calls=1,
)

FORMATS: dict[str, ToolFormat] = {f.name: f for f in (TESTBED, SEARCH_R1, TORL)}


def tool_format(name: str) -> ToolFormat:
    """The format called `name`; a clear error listing the known ones otherwise."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(
            f"unknown tool format {name!r}; known: {', '.join(sorted(FORMATS))}"
        ) from None
