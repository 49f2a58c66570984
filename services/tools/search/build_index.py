"""Build a search index from a JSONL corpus (`id`, `title`, `text` per line).

    python -m services.tools.search.build_index --corpus wiki.jsonl --backend bm25 --out idx/
    python -m services.tools.search.build_index --corpus wiki.jsonl --backend dense \\
        --model intfloat/e5-base-v2 --query-prefix "query: " --passage-prefix "passage: " \\
        --out idx-e5/

A malformed corpus line stops the build with a message naming the line. `--reuse` skips the
build when the directory already holds an index of the same corpus bytes, backend and model.
A killed build is resumed by running the same command again (dense: from the last whole
fp16 shard in `.<out>.partial/`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from paretopo.corpus import CorpusError
from services.tools.search.index import DEFAULT_SHARD_ROWS


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m services.tools.search.build_index",
                                description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, required=True, help="JSONL corpus file")
    p.add_argument("--backend", choices=["bm25", "dense"], default="bm25")
    p.add_argument("--out", type=Path, required=True, help="index directory to write")
    p.add_argument("--model", default="all-MiniLM-L6-v2",
                   help="dense: sentence-transformers model name or path (loaded offline)")
    p.add_argument("--query-prefix", default="", help='dense: e.g. "query: " for E5')
    p.add_argument("--passage-prefix", default="", help='dense: e.g. "passage: " for E5')
    p.add_argument("--batch-size", type=int, default=64, help="dense: embedding batch size")
    p.add_argument("--device", default="auto", help="dense: torch device ('auto': CUDA if any)")
    p.add_argument("--shard-rows", type=int, default=DEFAULT_SHARD_ROWS,
                   help="dense: passages per fp16 embedding shard (the unit of resumption)")
    p.add_argument("--ann", choices=["flat", "ivfpq", "sq8"], default="flat",
                   help="dense: flat (exact over the fp16 shards) or a compressed FAISS index")
    p.add_argument("--nlist", type=int, default=0, help="ivfpq: lists (0: ~4·sqrt(N))")
    p.add_argument("--pq-m", type=int, default=0, help="ivfpq: bytes per vector (0: dim/8)")
    p.add_argument("--nprobe", type=int, default=16, help="ivfpq: lists scanned per query")
    p.add_argument("--rerank", type=int, default=0,
                   help="ivfpq/sq8: re-score k*R candidates on the fp16 shards (0: off)")
    p.add_argument("--torch-threads", type=int, default=0,
                   help="dense: torch threads (0: default; 1: bit-reproducible embeddings)")
    p.add_argument("--limit", type=int, default=None, help="index only the first N passages")
    p.add_argument("--reuse", action="store_true",
                   help="keep an existing index of the same corpus/backend/model")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from services.tools.search.ann import AnnSpec
    from services.tools.search.index import BuildOptions, build_index, is_current, partial_build

    console = Console(stderr=True)
    if not args.corpus.is_file():
        print(f"error: corpus file not found: {args.corpus}", file=sys.stderr)
        return 2
    options = BuildOptions(backend=args.backend, model=args.model,
                           query_prefix=args.query_prefix, passage_prefix=args.passage_prefix,
                           batch_size=args.batch_size, device=args.device, limit=args.limit,
                           shard_rows=args.shard_rows, torch_threads=args.torch_threads,
                           ann=AnnSpec(kind=args.ann, nlist=args.nlist, pq_m=args.pq_m,
                                       nprobe=args.nprobe, rerank=args.rerank))
    if args.reuse and args.limit is None and is_current(args.out, args.corpus, options):
        console.print(f"{args.out} already indexes {args.corpus} ({args.backend}); kept")
        return 0
    done = partial_build(args.out, args.corpus, options)
    if done.get("store"):
        console.print(f"resuming {args.out.with_name(f'.{args.out.name}.partial')}: "
                      f"passage store written, "
                      f"{done.get('shards_done', 0)} shards embedded", markup=False,
                      highlight=False)
    columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console, disable=args.no_progress) as progress:
        task = progress.add_task(f"{args.backend} index", total=None)

        def advance(n: int, total: int) -> None:
            progress.update(task, total=total, advance=n)

        try:
            manifest = build_index(args.corpus, args.out, options, progress=advance)
        except (CorpusError, FileExistsError, ValueError) as err:
            progress.stop()
            print(f"error: {err}", file=sys.stderr)  # unwrapped: the line number stays whole
            return 2
    console.print(f"wrote {args.out}: {manifest.backend}, {manifest.num_passages} passages, "
                  f"{manifest.build_seconds:.1f}s", markup=False, highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
