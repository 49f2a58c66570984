"""Prompt templates of the paper's two settings, rendered through a Qwen2.5 chat template.

One source of truth shared with the rollout service: a template gives the prompt text (and
names its tool format); the format (`paretopo.agent_formats`) gives stops and result wrapping.

- ``torl`` (math, Python tool): ToRL's system prompt (the one in its verl data,
  ``data/torl_data/*.parquet``) and its tool-integrated instruction ("Please integrate natural
  language reasoning with programs …", ToRL paper, prompt template) before the problem.
- ``search_r1`` (QA, search tool): Search-R1's instruction with the question appended
  (``scripts/data_process/nq_search.py``, ``make_prefix``: the question stripped and ended
  with "?"), as the only user message; the chat template adds its default system prompt.

`render_prompt` applies ``tokenizer.apply_chat_template(messages, add_generation_prompt=True,
tokenize=False)``; a tokenizer without a chat template (the testbed's) gets
`QWEN25_CHAT_TEMPLATE`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from paretopo.agent_formats import ToolFormat, tool_format

__all__ = [
    "QWEN25_CHAT_TEMPLATE",
    "QWEN25_MATH_CHAT_TEMPLATE",
    "SEARCH_R1",
    "TEMPLATES",
    "TORL",
    "PromptTemplate",
    "ensure_chat_template",
    "prompt_template",
    "render_prompt",
]

QWEN25_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
QWEN25_MATH_DEFAULT_SYSTEM = (
    "Please reason step by step, and put your final answer within \\\\boxed{}."
)

#: The ``chat_template`` of the Qwen2.5 tokenizers (``tokenizer_config.json`` of
#: Qwen/Qwen2.5-{3B,7B} and their -Instruct models, which share it): ChatML with tool calls.
QWEN25_CHAT_TEMPLATE = (
    "{%- if tools %}\n"
    "    {{- '<|im_start|>system\\n' }}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- messages[0]['content'] }}\n"
    "    {%- else %}\n"
    "        {{- '" + QWEN25_DEFAULT_SYSTEM + "' }}\n"
    "    {%- endif %}\n"
    '    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user '
    "query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:"
    '\\n<tools>" }}\n'
    "    {%- for tool in tools %}\n"
    '        {{- "\\n" }}\n'
    "        {{- tool | tojson }}\n"
    "    {%- endfor %}\n"
    '    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name '
    "and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": "
    '<function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}\n'
    "{%- else %}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "    {%- else %}\n"
    "        {{- '<|im_start|>system\\n" + QWEN25_DEFAULT_SYSTEM + "<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    '    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or '
    '(message.role == "assistant" and not message.tool_calls) %}\n'
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + "
    "'\\n' }}\n"
    '    {%- elif message.role == "assistant" %}\n'
    "        {{- '<|im_start|>' + message.role }}\n"
    "        {%- if message.content %}\n"
    "            {{- '\\n' + message.content }}\n"
    "        {%- endif %}\n"
    "        {%- for tool_call in message.tool_calls %}\n"
    "            {%- if tool_call.function is defined %}\n"
    "                {%- set tool_call = tool_call.function %}\n"
    "            {%- endif %}\n"
    "            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n"
    "            {{- tool_call.name }}\n"
    "            {{- '\", \"arguments\": ' }}\n"
    "            {{- tool_call.arguments | tojson }}\n"
    "            {{- '}\\n</tool_call>' }}\n"
    "        {%- endfor %}\n"
    "        {{- '<|im_end|>\\n' }}\n"
    '    {%- elif message.role == "tool" %}\n'
    '        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}\n'
    "            {{- '<|im_start|>user' }}\n"
    "        {%- endif %}\n"
    "        {{- '\\n<tool_response>\\n' }}\n"
    "        {{- message.content }}\n"
    "        {{- '\\n</tool_response>' }}\n"
    '        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}\n'
    "            {{- '<|im_end|>\\n' }}\n"
    "        {%- endif %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n"
)

#: Qwen2.5-Math's template: the same, with its own default system prompt.
QWEN25_MATH_CHAT_TEMPLATE = QWEN25_CHAT_TEMPLATE.replace(
    QWEN25_DEFAULT_SYSTEM, QWEN25_MATH_DEFAULT_SYSTEM
)


@dataclass(frozen=True)
class PromptTemplate:
    """The messages of one setting's prompt, and the tool format its rollouts use."""

    name: str
    tool_format_name: str
    user: str  # str.format template with {question}
    system: str | None = None  # None: the chat template's default system prompt
    question_mark: bool = False  # end the question with "?" (Search-R1's preprocessing)

    @property
    def tool_format(self) -> ToolFormat:
        return tool_format(self.tool_format_name)

    def messages(self, question: str) -> list[dict[str, str]]:
        """The chat messages for ``question``."""
        question = question.strip()
        if not question:
            raise ValueError("empty question")
        if self.question_mark and not question.endswith("?"):
            question += "?"
        user = {"role": "user", "content": self.user.format(question=question)}
        return ([{"role": "system", "content": self.system}] if self.system else []) + [user]


TORL = PromptTemplate(
    name="torl",
    tool_format_name="torl",
    system="Please reason step by step, and put your final answer within \\boxed{}.",
    user=(
        "Please integrate natural language reasoning with programs to solve the problem "
        "above, and put your final answer within \\boxed{{}}.\n{question}"
    ),
)

SEARCH_R1 = PromptTemplate(
    name="search_r1",
    tool_format_name="search_r1",
    question_mark=True,
    user=(
        "Answer the given question. You must conduct reasoning inside <think> and </think> "
        "first every time you get new information. After reasoning, if you find you lack some "
        "knowledge, you can call a search engine by <search> query </search> and it will "
        "return the top searched results between <information> and </information>. You can "
        "search as many times as your want. If you find no further external knowledge needed, "
        "you can directly provide the answer inside <answer> and </answer>, without detailed "
        "illustrations. For example, <answer> Beijing </answer>. Question: {question}\n"
    ),
)

TEMPLATES: dict[str, PromptTemplate] = {t.name: t for t in (TORL, SEARCH_R1)}


def prompt_template(name: str) -> PromptTemplate:
    """The template called `name`; a clear error listing the known ones otherwise."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(
            f"unknown prompt template {name!r}; known: {', '.join(sorted(TEMPLATES))}"
        ) from None


def ensure_chat_template(tokenizer: Any, template: str = QWEN25_CHAT_TEMPLATE) -> Any:
    """Give ``tokenizer`` ``template`` when it has no chat template of its own; returns it."""
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = template
    return tokenizer


def render_prompt(template: PromptTemplate | str, question: str, tokenizer: Any) -> str:
    """The exact prompt text the policy sees: the template's messages through the tokenizer's
    chat template (Qwen2.5's when it has none), ending with the assistant turn's opening."""
    tpl = prompt_template(template) if isinstance(template, str) else template
    ensure_chat_template(tokenizer)
    text = tokenizer.apply_chat_template(
        tpl.messages(question), add_generation_prompt=True, tokenize=False
    )
    return str(text)
