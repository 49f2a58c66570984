"""fp16 shards, exact sharded search (CPU blocks and the torch path on the CPU), compressed
indexes and their re-scoring, and the streaming store; no model, vectors built here."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
from search_testdata import CORPUS

from paretopo.corpus import PassageStore, read_corpus, write_store
from services.tools.search import ann, shards
from services.tools.search.flat import ShardedFlat, TorchShardedFlat, cuda_devices, merge_topk
from services.tools.search.store_stream import write_store_stream

DIM, ROWS, SHARD_ROWS = 32, 1000, 300  # four shards, the last one 100 rows


def unit_vectors(n: int, seed: int) -> np.ndarray:
    """Clustered unit vectors (as embeddings are), so ANN indexes have structure to find."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(20, DIM))
    x = centers[rng.integers(0, 20, n)] + 0.4 * rng.normal(size=(n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def sharded(tmp_path_factory) -> tuple[list[np.ndarray], np.ndarray]:
    """Four shards on disk (memory-mapped back) and the fp32 vectors they round."""
    out = tmp_path_factory.mktemp("shards")
    vectors = unit_vectors(ROWS, seed=0)
    for s in range(shards.num_shards(ROWS, SHARD_ROWS)):
        shards.write_shard(out, s, vectors[s * SHARD_ROWS:(s + 1) * SHARD_ROWS])
    return shards.open_shards(out, ROWS, SHARD_ROWS), vectors


def exact(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    index = faiss.IndexFlatIP(DIM)
    index.add(vectors)
    return index.search(queries, k)


def test_shards_round_trip_and_count_check(tmp_path) -> None:
    x = unit_vectors(10, seed=1)
    shards.write_shard(tmp_path, 0, x[:6])
    shards.write_shard(tmp_path, 1, x[6:])
    [a, b] = shards.open_shards(tmp_path, 10, 6)
    assert a.dtype == np.float16 and a.shape == (6, DIM) and b.shape == (4, DIM)
    assert np.abs(np.vstack([a, b]).astype(np.float32) - x).max() < 2e-3
    assert sorted(p.name for p in (tmp_path / "emb").iterdir()) == ["00000.npy", "00001.npy"]
    with pytest.raises(ValueError, match="rebuild the index"):
        shards.open_shards(tmp_path, 11, 6)


def test_cpu_blocks_equal_exact_search_over_the_same_vectors(sharded) -> None:
    parts, _ = sharded
    upcast = np.vstack(parts).astype(np.float32)
    queries = unit_vectors(40, seed=2)
    want_s, want_i = exact(upcast, queries, 10)
    got_s, got_i = ShardedFlat(parts, chunk_rows=128).search(queries, 10)  # blocks ≠ shards
    np.testing.assert_allclose(got_s, want_s, atol=1e-5)
    assert (got_i == want_i).mean() > 0.999  # only exact ties may order differently


def test_fp16_shards_match_fp32_search_up_to_rounding(sharded) -> None:
    parts, vectors = sharded
    queries = unit_vectors(40, seed=3)
    want_s, want_i = exact(vectors, queries, 10)
    got_s, got_i = ShardedFlat(parts).search(queries, 10)
    np.testing.assert_allclose(got_s, want_s, atol=2e-3)
    for row_got, row_want, scores in zip(got_i, want_i, want_s, strict=True):
        for rank in np.nonzero(row_got != row_want)[0]:  # a swap only between near-ties
            assert np.min(np.abs(scores - scores[rank])[scores != scores[rank]],
                          initial=1.0) < 4e-3


def test_torch_path_on_the_cpu_agrees(sharded) -> None:
    parts, _ = sharded
    queries = unit_vectors(16, seed=4)
    want_s, want_i = ShardedFlat(parts).search(queries, 5)
    index = TorchShardedFlat(parts, ["cpu", "cpu"])  # two "devices": round robin + merge
    assert (index.ntotal, index.dim) == (ROWS, DIM)
    got_s, got_i = index.search(queries, 5)
    np.testing.assert_allclose(got_s, want_s, atol=3e-3)  # fp16 matmul output
    assert (got_i == want_i).mean() > 0.95


def test_merge_orders_by_score_then_id() -> None:
    s = np.array([[0.5, 0.9, 0.5, 0.1]], dtype=np.float32)
    i = np.array([[7, 3, 2, 9]])
    got_s, got_i = merge_topk(s, i, 3)
    assert got_i.tolist() == [[3, 2, 7]] and got_s.tolist()[0][0] == pytest.approx(0.9)


def test_gpu_on_without_cuda_refuses() -> None:
    import torch

    if torch.cuda.device_count():
        pytest.skip("a CUDA device is present; 'on' would succeed")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        cuda_devices("on")
    assert cuda_devices("auto") == [] and cuda_devices("off") == []


def test_auto_nlist_follows_the_corpus_size() -> None:
    assert ann.auto_nlist(21_000_000) == 16_384
    assert ann.auto_nlist(9_654) == 128
    spec = ann.resolved(ann.AnnSpec(kind="ivfpq"), 21_000_000, 768)
    assert (spec.nlist, spec.pq_m, spec.train_rows) == (16_384, 96, 1_048_576)
    with pytest.raises(ValueError, match="does not divide"):
        ann.resolved(ann.AnnSpec(kind="ivfpq", pq_m=7), 1000, 768)


@pytest.mark.parametrize("kind", ["ivfpq", "sq8"])
def test_compressed_index_and_full_rerank(sharded, tmp_path, kind) -> None:
    parts, _ = sharded
    # pq_m=4: FAISS trains one 256-centroid k-means per byte, slow on a busy CPU
    spec = ann.resolved(ann.AnnSpec(kind=kind, nlist=8, pq_m=4, nprobe=8), ROWS, DIM)
    ann.build_ann(parts, SHARD_ROWS, spec, tmp_path / ann.INDEX_FILE)
    queries = unit_vectors(30, seed=5)
    want_s, want_i = ShardedFlat(parts).search(queries, 10)
    plain = ann.AnnIndex(tmp_path / ann.INDEX_FILE, spec, parts, SHARD_ROWS)
    _, got_i = plain.search(queries, 10)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got_i, want_i, strict=True)])
    assert overlap > 0.5
    # nprobe = nlist and k·rerank = every row: re-scoring on the shards is exact search.
    full = spec.model_copy(update={"rerank": ROWS // 10})
    got_s, got_i = ann.AnnIndex(tmp_path / ann.INDEX_FILE, full, parts, SHARD_ROWS).search(
        queries, 10)
    np.testing.assert_allclose(got_s, want_s, atol=1e-5)
    assert (got_i == want_i).mean() > 0.999


def test_streamed_store_is_byte_identical(tmp_path) -> None:
    passages = list(read_corpus(CORPUS, limit=500))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_store(passages, tmp_path / "a")
    assert write_store_stream(read_corpus(CORPUS, limit=500), tmp_path / "b", every=64) == 500
    for name in ("passages.jsonl", "offsets.npy"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    store = PassageStore(tmp_path / "b")
    try:
        assert store.get(499) == passages[499]
    finally:
        store.close()
