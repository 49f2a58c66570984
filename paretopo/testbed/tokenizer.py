"""A character-level tokenizer with one token per tag, as a Hugging Face fast tokenizer.

Built with `tokenizers` (a BPE model with no merges is exactly a character vocabulary: every
printable ASCII character and the newline), with the tags of `prompts.TAGS` as special tokens so
that each tag is one id the agent loop can stop on. Saved and loaded in the standard format
(`tokenizer.json` + `tokenizer_config.json`), so `AutoTokenizer.from_pretrained` loads it
like a real Qwen2.5 tokenizer — through `paretopo.hf_policy.load_tokenizer`, not a bare
`AutoTokenizer`:
transformers 5 forces its own `Qwen2Tokenizer` (byte-level BPE, which drops spaces and newlines
from this vocabulary) on any directory whose `config.json` says `qwen2`, whatever
`tokenizer_config.json` declares. `load_tokenizer` honours the declared class instead.

Decode with `skip_special_tokens=False` to keep the tags in the text.
"""

from __future__ import annotations

from tokenizers import AddedToken, Tokenizer, decoders, models
from transformers import PreTrainedTokenizerFast

from paretopo.testbed.prompts import TAGS

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"

#: The character vocabulary: printable ASCII and the newline. Anything else encodes as <unk>.
CHARS: tuple[str, ...] = (*(chr(i) for i in range(32, 127)), "\n")


def build_tokenizer() -> PreTrainedTokenizerFast:
    """The testbed tokenizer (ids: <unk> 0, characters 1.., then <pad> <bos> <eos>, then tags)."""
    vocab = {UNK: 0} | {c: i + 1 for i, c in enumerate(CHARS)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK, fuse_unk=False))
    backend.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in (PAD, BOS, EOS, *TAGS)]
    )
    backend.decoder = decoders.Fuse()  # characters join with nothing in between
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        extra_special_tokens=list(TAGS),
        padding_side="left",  # generation pads on the left, so every row ends at its last token
        model_max_length=1024,
    )
