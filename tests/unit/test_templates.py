"""Prompt templates through the Qwen2.5 chat template, and the anchors' tool formats."""

from __future__ import annotations

import pytest

from paretopo.agent_formats import FORMATS, SEARCH_R1, TESTBED, TORL, tool_format
from paretopo.templates import (
    QWEN25_CHAT_TEMPLATE,
    QWEN25_MATH_CHAT_TEMPLATE,
    TEMPLATES,
    ensure_chat_template,
    prompt_template,
    render_prompt,
)
from paretopo.testbed.tokenizer import build_tokenizer

QWEN_SYSTEM = (
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    "<|im_end|>\n"
)


@pytest.fixture
def tokenizer():
    tok = build_tokenizer()
    assert not tok.chat_template  # the testbed tokenizer has none of its own
    return tok


def test_torl_prompt_renders_as_chatml(tokenizer):
    text = render_prompt("torl", "  What is $1+1$? ", tokenizer)
    assert text == (
        "<|im_start|>system\n"
        "Please reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n"
        "<|im_start|>user\n"
        "Please integrate natural language reasoning with programs to solve the problem above, "
        "and put your final answer within \\boxed{}.\nWhat is $1+1$?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert tokenizer.chat_template == QWEN25_CHAT_TEMPLATE


def test_search_r1_prompt_adds_question_mark_and_default_system(tokenizer):
    text = render_prompt(TEMPLATES["search_r1"], "who wrote hamlet", tokenizer)
    assert text.startswith(QWEN_SYSTEM + "<|im_start|>user\nAnswer the given question. ")
    assert "call a search engine by <search> query </search>" in text
    assert text.endswith("Question: who wrote hamlet?\n<|im_end|>\n<|im_start|>assistant\n")
    assert render_prompt("search_r1", "is it?", tokenizer).count("is it??") == 0


def test_torl_system_prompt_is_the_one_in_torl_data():
    from paretopo.datasets import shared_data_dir

    path = shared_data_dir() / "math/torl_test.parquet"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    import pyarrow.parquet as pq

    systems = {r["prompt"][0]["content"] for r in pq.read_table(path).to_pylist()}
    assert systems == {TEMPLATES["torl"].system}


def test_chat_template_generation_prompt_multi_turn_and_tools(tokenizer):
    ensure_chat_template(tokenizer)
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    assert tokenizer.apply_chat_template(messages, tokenize=False) == (
        QWEN_SYSTEM + "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>\n"
    )
    tool = {"type": "function", "function": {"name": "f", "parameters": {}}}
    with_tools = tokenizer.apply_chat_template(messages[:1], tools=[tool], tokenize=False,
                                               add_generation_prompt=True)
    assert "# Tools" in with_tools and '"name": "f"' in with_tools
    assert with_tools.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


def test_existing_chat_template_is_kept_and_math_variant(tokenizer):
    tokenizer.chat_template = QWEN25_MATH_CHAT_TEMPLATE
    ensure_chat_template(tokenizer)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "q"}], tokenize=False,
                                         add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nPlease reason step by step, and put your final "
                           "answer within \\boxed{}.<|im_end|>\n")


def test_every_template_names_a_known_format_and_bad_names_fail():
    assert {t.tool_format.name for t in TEMPLATES.values()} <= set(FORMATS)
    with pytest.raises(ValueError, match="unknown prompt template 'x'; known: search_r1, torl"):
        prompt_template("x")
    with pytest.raises(ValueError, match="empty question"):
        TEMPLATES["torl"].messages("  ")


def test_torl_format_stops_at_output_fence_and_reads_the_code():
    assert TORL.stop_strings == ("```output",)
    text = "Let me compute.\n```python\nprint(2 + 2)\n```\n```output"
    call = TORL.call_closed_by(text)
    assert call is not None and call.request(text) == "print(2 + 2)"
    assert TORL.result_text(call, "4\n") == "\n4\n```\n"  # after the model's ```output
    assert TORL.boxed_answer and TORL.answer_stop is None and TORL.default_max_tool_calls == 1


def test_torl_truncates_and_keeps_last_error_line_as_torl_does():
    call = TORL.calls[0]
    long = "".join(str(i % 10) for i in range(300))
    assert TORL.result_text(call, long) == f"\n{long[:128]}...{long[-128:]}\n```\n"
    assert TORL.result_text(call, "x" * 255) == "\n" + "x" * 255 + "\n```\n"  # under 256: kept
    trace = "Traceback (most recent call last):\n  File \"<s>\", line 1\nNameError: name 'a'\n"
    assert TORL.result_text(call, trace) == "\nNameError: name 'a'\n```\n"


def test_search_r1_format_blocks_and_limits():
    assert SEARCH_R1.stop_strings == ("</search>", "</answer>")
    text = "<think>need it</think>\n<search> capital of france </search>"
    call = SEARCH_R1.call_closed_by(text)
    assert call is not None and call.request(text) == "capital of france"
    block = SEARCH_R1.result_text(call, 'Doc 1(Title: "Paris") Paris is the capital.\n')
    assert block == '\n\n<information>Doc 1(Title: "Paris") Paris is the capital.</information>\n\n'
    assert SEARCH_R1.default_max_tool_calls == 4


def test_testbed_format_unchanged():
    assert TESTBED.result_text(TESTBED.calls[0], "4\n") == "<output>4\n</output>"
    assert tool_format("testbed") is TESTBED
