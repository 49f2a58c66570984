"""Retrieval quality on real questions: answer recall@k (a gold answer inside a top-k passage).

    python -m services.tools.search.evaluate --index-dir idx/ \\
        --questions /work/shared/data/qa/nq_test_sample1000.jsonl --top-k 3

A question counts as recalled when the SQuAD-normalised text of one of its top-k passages
(title and text) contains a SQuAD-normalised gold answer: the measure Search-R1's corpus
sample was labelled with. Questions whose answer is in no passage still count in the
denominator, so the corpus bounds recall from above.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from paretopo.answers import normalize_answer
from services.tools.search.service import ScoredPassage, SearchService


@dataclass(frozen=True)
class Question:
    question: str
    answers: list[str]


def read_questions(path: Path, *, limit: int | None = None) -> list[Question]:
    """Questions with gold answers from JSONL (`question` + `golden_answers` or `answer`)."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            obj = json.loads(line)
            answers = obj.get("golden_answers", obj.get("answer", []))
            out.append(Question(obj["question"], [answers] if isinstance(answers, str)
                                else [str(a) for a in answers]))
            if limit is not None and len(out) >= limit:
                break
    return out


def contains_answer(passages: Sequence[ScoredPassage], answers: Sequence[str]) -> bool:
    """True when a normalised gold answer is a substring of a normalised passage."""
    golds = [g for g in (normalize_answer(a) for a in answers) if g]
    texts = [normalize_answer(f"{p.title} {p.text}") for p in passages]
    return any(g in t for g in golds for t in texts)


def answer_recall(service: SearchService, questions: Sequence[Question], *, top_k: int = 3,
                  batch_size: int = 64) -> float:
    """Fraction of `questions` with a gold answer in their top-k passages."""
    if not questions:
        raise ValueError("no questions")
    hits = 0
    for start in range(0, len(questions), batch_size):
        batch = questions[start:start + batch_size]
        results = service.search([q.question for q in batch], top_k)
        hits += sum(contains_answer(r.passages, q.answers)
                    for r, q in zip(results, batch, strict=True))
    return hits / len(questions)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m services.tools.search.evaluate",
                                description=__doc__.splitlines()[0])
    p.add_argument("--index-dir", type=Path, required=True)
    p.add_argument("--questions", type=Path, required=True)
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--limit", type=int, default=None, help="first N questions only")
    args = p.parse_args(argv)
    from services.tools.search.index import load_index
    from services.tools.search.service import Limits

    retriever, store, manifest = load_index(args.index_dir)
    limits = Limits(max_top_k=max(args.top_k, 50))
    service = SearchService(retriever, store, limits=limits)
    questions = read_questions(args.questions, limit=args.limit)
    recall = answer_recall(service, questions, top_k=args.top_k)
    print(f"{manifest.backend} ({manifest.model}), {manifest.num_passages} passages: "
          f"answer recall@{args.top_k} = {recall:.3f} over {len(questions)} questions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
