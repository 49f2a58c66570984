"""The tokenizer round-trips every tag; the policy saves, reloads and generates identically."""

from __future__ import annotations

import pytest
import torch

from paretopo.hf_policy import load_policy, load_tokenizer, save_policy
from paretopo.testbed.model import ModelConfig, build_model, n_parameters
from paretopo.testbed.prompts import TAGS, render_prompt
from paretopo.testbed.tokenizer import CHARS, build_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


@pytest.mark.parametrize("tag", TAGS)
def test_every_tag_is_one_token_and_round_trips(tokenizer, tag):
    ids = tokenizer(tag, add_special_tokens=False)["input_ids"]
    assert len(ids) == 1
    assert tokenizer.convert_ids_to_tokens(ids) == [tag]
    text = f"x{tag}y {tag}\n"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text) - 2 * (len(tag) - 1)
    assert tokenizer.decode(ids, skip_special_tokens=False) == text


def test_every_character_round_trips(tokenizer):
    text = "".join(CHARS) + render_prompt("calc", "What is 2 + 3?")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=False) == text


def test_unknown_characters_become_unk_one_by_one(tokenizer):
    ids = tokenizer("aé b", add_special_tokens=False)["input_ids"]
    assert len(ids) == 4 and ids[1] == tokenizer.unk_token_id


def test_encoding_segments_separately_equals_encoding_the_whole(tokenizer):
    parts = ["Q: 1+2?\n", "<python>print(1+2)</python>", "<output>3\n</output>", "<answer>3"]
    whole = tokenizer("".join(parts), add_special_tokens=False)["input_ids"]
    pieces = [i for p in parts for i in tokenizer(p, add_special_tokens=False)["input_ids"]]
    assert whole == pieces


def test_tokenizer_saves_and_loads_identically(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    loaded = load_tokenizer(tmp_path)
    text = render_prompt("kbqa", "In which city was Ada Lov born?") + "".join(TAGS)
    assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert loaded.pad_token_id == tokenizer.pad_token_id
    assert loaded.eos_token_id == tokenizer.eos_token_id
    assert len(loaded) == len(tokenizer)


def test_model_is_a_small_qwen2(tokenizer):
    model = build_model(tokenizer)
    assert model.config.model_type == "qwen2"
    assert 1_000_000 <= n_parameters(model) <= 5_000_000


def test_model_saves_reloads_and_generates_identically(tokenizer, tmp_path):
    model = build_model(tokenizer, ModelConfig(num_hidden_layers=2), seed=7).eval()
    save_policy(model, tokenizer, tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert (tmp_path / "tokenizer.json").is_file()
    loaded, loaded_tok = load_policy(tmp_path)
    prompt = tokenizer([render_prompt("calc", "What is 7 * 8?")], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**prompt).logits, loaded(**prompt).logits)
        kwargs = {"max_new_tokens": 40, "do_sample": False, "pad_token_id": tokenizer.pad_token_id}
        a = model.generate(**prompt, **kwargs)
        b = loaded.generate(**prompt, **kwargs)
    assert torch.equal(a, b)
    assert a.shape[1] > prompt["input_ids"].shape[1]
    assert loaded_tok.decode(b[0]) == tokenizer.decode(a[0])
