"""BM25 retrieval with `bm25s`: the light local default backend.

Lower-cased word tokens (two or more word characters), English stop words removed, no
stemming (a Snowball stemmer moved NQ recall@3 on the sample corpus from 0.599 to 0.602,
not worth a dependency). The tokenizer's vocabulary is saved beside the index so that
queries map to the same token ids; query words the corpus never uses are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np
from bm25s.tokenization import Tokenizer

from paretopo.corpus import Passage

SUBDIR = "bm25"
TOKENIZER_VOCAB = "vocab.tokenizer.json"
# Files bm25s writes with its default names; checked before loading so a missing one is named.
INDEX_FILES = ("params.index.json", "vocab.index.json", "data.csc.index.npy",
               "indices.csc.index.npy", "indptr.csc.index.npy", TOKENIZER_VOCAB)
STOPWORDS = "en"
DESCRIPTION = "bm25s (lower-case word tokens, English stop words, no stemming)"


def _tokenizer() -> Tokenizer:
    return Tokenizer(lower=True, stopwords=STOPWORDS, stemmer=None)


def build_bm25(passages: Sequence[Passage], out_dir: Path, *, show_progress: bool) -> None:
    """Tokenize and index `passages`; write the index and vocabulary under `out_dir/bm25`."""
    tokenizer = _tokenizer()
    ids = tokenizer.tokenize([p.contents() for p in passages], show_progress=show_progress,
                             return_as="ids")
    retriever = bm25s.BM25()
    retriever.index(ids, show_progress=show_progress)
    target = out_dir / SUBDIR
    target.mkdir(parents=True, exist_ok=True)
    retriever.save(str(target), show_progress=False)
    tokenizer.save_vocab(str(target), vocab_name=TOKENIZER_VOCAB)


class Bm25Retriever:
    """Top-k passage indices by BM25 score for a batch of queries."""

    backend = "bm25"
    model = DESCRIPTION

    def __init__(self, index_dir: Path, *, num_passages: int) -> None:
        target = index_dir / SUBDIR
        self._retriever = bm25s.BM25.load(str(target), show_progress=False)
        self._tokenizer = _tokenizer()
        self._tokenizer.load_vocab(str(target), vocab_name=TOKENIZER_VOCAB)
        self.num_passages = num_passages

    def search(self, queries: Sequence[str], k: int) -> list[list[tuple[int, float]]]:
        """Up to `k` (index, score) pairs per query, best first, score > 0 only.

        A passage that shares no term with the query scores 0 and is left out: BM25 has no
        evidence for it, and padding with arbitrary passages would mislead the agent.
        """
        k = min(k, self.num_passages)
        tokens = self._tokenizer.tokenize(list(queries), update_vocab=False,
                                          show_progress=False, return_as="ids")
        docs, scores = self._retriever.retrieve(tokens, k=k, show_progress=False, n_threads=0)
        return [
            [(int(d), float(s)) for d, s in zip(row_d, row_s, strict=True) if s > 0]
            for row_d, row_s in zip(np.asarray(docs), np.asarray(scores), strict=True)
        ]
