"""The `vector` workload for one peer, in a process of its own, printing one
JSON line per measurement (as peers.py does for the orders workloads):

    python vector_peers.py --data bench/data/vector/<scale> --system faiss_ivf_flat

Systems: `faiss_ivf_flat` (faiss IndexIVFFlat), `faiss_hnsw` (faiss
IndexHNSWFlat, M=32) and `lancedb` (an IVF_FLAT index on a LanceDB table).
Every system gets the same vectors, the same queries and the same IVF list
count (`nlist` in meta.json); Tidelake's side is `tidelake-vector-bench`.

Measurements, in order: `vector_build` (index build; the data load is
`load_seconds`), `vector_search` (one line per search width: recall@10 and
queries per second, one query at a time on one thread), `vector_filter`
(at each selectivity, at the system's operating point: the fastest width
whose recall@10 reached 0.95, else its best), and `vector_churn` (10% of
the rows get a new vector and 5% are deleted through the system's own write
path; then recall against the table's new contents and the count of deleted
or stale rows returned).

faiss runs its build on every core and its queries on one OpenMP thread.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

import numpy as np

from common import emit, failure, not_applicable, peak_rss_bytes
from vector_data import SELECTIVITIES_PER_MILLE, VectorDir

K = 10
RECALL_TARGET = 0.95
# Powers of two with a point between each from 8 up, where the curves cross
# recall 0.9 to 0.99 (the same widths as tidelake-vector-bench's).
IVF_WIDTHS = [1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128]
HNSW_WIDTHS = [16, 32, 64, 128, 256, 512]
HNSW_M = 32
# A search width is skipped once its whole curve point would take longer than this.
POINT_BUDGET_S = 60.0

Search = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def recall_at_k(got: list[np.ndarray], truth: np.ndarray, k: int = K) -> float:
    """Mean over queries of |returned top k ∩ true top k| / (true rows, at most k)."""
    total = 0.0
    counted = 0
    for ids, want in zip(got, truth):
        want = want[:k]
        want = want[want >= 0]
        if len(want) == 0:
            continue
        total += len(np.intersect1d(ids[:k], want)) / len(want)
        counted += 1
    return total / counted if counted else 1.0


def stale_rows(got: list[tuple[np.ndarray, np.ndarray]], queries: np.ndarray, current: np.ndarray, deleted: np.ndarray) -> int:
    """Returned rows that are deleted, or whose distance is not the distance
    to the row's current vector (an old version of the row)."""
    gone = set(deleted.tolist())
    bad = 0
    for q, (ids, dist) in zip(queries, got):
        for i, d in zip(ids.tolist(), dist.tolist()):
            if i < 0:
                continue
            if i in gone:
                bad += 1
                continue
            true = float(np.linalg.norm(current[i].astype(np.float64) - q.astype(np.float64)))
            if abs(true - d) > 1e-3 * max(1.0, true):
                bad += 1
    return bad


def timed_queries(search: Search, queries: np.ndarray) -> tuple[list[tuple[np.ndarray, np.ndarray]], float]:
    results = []
    started = time.perf_counter()
    for q in queries:
        results.append(search(q))
    return results, time.perf_counter() - started


def operating_point(points: list[dict]) -> dict:
    """The fastest point that reached the recall target, else the most accurate."""
    good = [p for p in points if p["recall_at_10"] >= RECALL_TARGET]
    if good:
        return max(good, key=lambda p: p["rows_per_s"])
    return max(points, key=lambda p: (p["recall_at_10"], p["rows_per_s"]))


class VectorPeer:
    name = ""
    index = ""
    width_name = "nprobe"
    widths: list[int] = IVF_WIDTHS

    def __init__(self, data: VectorDir):
        self.data = data
        self.scale = data.scale()
        self.nlist = data.meta()["nlist"]
        self.work = data.work_dir(self.name)

    def build(self, base: np.ndarray, cat: np.ndarray) -> float:
        """Loads the rows (not counted) and builds the index; returns the load seconds."""
        raise NotImplementedError

    def searcher(self, width: int, per_mille: int | None = None) -> Search:
        """Searches returning (ids, L2 distances) of the K nearest."""
        raise NotImplementedError

    def apply_churn(self, upsert_ids: np.ndarray, upsert_vectors: np.ndarray, cat: np.ndarray, delete_ids: np.ndarray) -> None:
        raise NotImplementedError

    def churn_unsupported(self) -> str | None:
        return None


class FaissIvfFlat(VectorPeer):
    name = "faiss_ivf_flat"

    def build(self, base, cat):
        import faiss

        self.faiss = faiss
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        self.index_label = f"IVF-Flat nlist={self.nlist}"
        quantizer = faiss.IndexFlatL2(base.shape[1])
        index = faiss.IndexIVFFlat(quantizer, base.shape[1], self.nlist, faiss.METRIC_L2)
        index.train(base)
        index.add_with_ids(base, np.arange(len(base), dtype=np.int64))
        self.index = index
        self.quantizer = quantizer
        self.cat = cat
        self.selectors = {}
        return 0.0

    def selector(self, per_mille: int | None):
        if per_mille is None:
            return None
        if per_mille not in self.selectors:
            bits = np.packbits(self.cat < per_mille, bitorder="little")
            self.selectors[per_mille] = (bits, self.faiss.IDSelectorBitmap(len(self.cat), self.faiss.swig_ptr(bits)))
        return self.selectors[per_mille][1]

    def searcher(self, width, per_mille=None):
        faiss = self.faiss
        faiss.omp_set_num_threads(1)
        params = faiss.SearchParametersIVF(nprobe=width)
        sel = self.selector(per_mille)
        if sel is not None:
            params.sel = sel

        def search(q):
            d, i = self.index.search(q[None, :], K, params=params)
            return i[0], np.sqrt(np.maximum(d[0].astype(np.float64), 0.0))

        return search

    def apply_churn(self, upsert_ids, upsert_vectors, cat, delete_ids):
        faiss = self.faiss
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        gone = np.concatenate([upsert_ids, delete_ids]).astype(np.int64)
        self.index.remove_ids(faiss.IDSelectorBatch(gone))
        self.index.add_with_ids(upsert_vectors, upsert_ids)


class FaissHnsw(VectorPeer):
    name = "faiss_hnsw"
    width_name = "efSearch"
    widths = HNSW_WIDTHS

    def build(self, base, cat):
        import faiss

        self.faiss = faiss
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        index = faiss.IndexHNSWFlat(base.shape[1], HNSW_M, faiss.METRIC_L2)
        self.index_label = f"HNSW-Flat M={HNSW_M} efConstruction={index.hnsw.efConstruction}"
        index.add(base)
        self.index = index
        self.cat = cat
        self.selectors = {}
        return 0.0

    def searcher(self, width, per_mille=None):
        faiss = self.faiss
        faiss.omp_set_num_threads(1)
        params = faiss.SearchParametersHNSW(efSearch=max(width, K))
        if per_mille is not None:
            if per_mille not in self.selectors:
                bits = np.packbits(self.cat < per_mille, bitorder="little")
                self.selectors[per_mille] = (bits, faiss.IDSelectorBitmap(len(self.cat), faiss.swig_ptr(bits)))
            params.sel = self.selectors[per_mille][1]

        def search(q):
            d, i = self.index.search(q[None, :], K, params=params)
            return i[0], np.sqrt(np.maximum(d[0].astype(np.float64), 0.0))

        return search

    def churn_unsupported(self):
        return "faiss's HNSW indexes cannot remove or replace vectors (only rebuild)"


class LanceDb(VectorPeer):
    name = "lancedb"

    def rows(self, ids: np.ndarray, vectors: np.ndarray, cat: np.ndarray):
        import pyarrow as pa

        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
        return pa.table(
            {
                "id": pa.array(ids, type=pa.int64()),
                "cat": pa.array(cat, type=pa.int32()),
                "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]),
            }
        )

    def build(self, base, cat):
        import shutil

        import lancedb
        from lancedb.index import IvfFlat

        if self.work.exists():
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True)
        self.index_label = f"IVF_FLAT num_partitions={self.nlist}"
        started = time.perf_counter()
        db = lancedb.connect(str(self.work))
        table = db.create_table("v", data=self.rows(np.arange(len(base), dtype=np.int64), base, cat))
        load = time.perf_counter() - started
        table.create_index("vector", config=IvfFlat(distance_type="l2", num_partitions=self.nlist))
        self.table = table
        return load

    def searcher(self, width, per_mille=None):
        def search(q):
            query = self.table.search(q, vector_column_name="vector").distance_type("l2").nprobes(width).limit(K).select(["id", "_distance"])
            if per_mille is not None:
                query = query.where(f"cat < {per_mille}", prefilter=True)
            got = query.to_arrow()
            ids = got.column("id").to_numpy()
            # LanceDB's l2 distance is squared.
            dist = np.sqrt(np.maximum(got.column("_distance").to_numpy().astype(np.float64), 0.0))
            return ids, dist

        return search

    def apply_churn(self, upsert_ids, upsert_vectors, cat, delete_ids):
        changed = self.rows(upsert_ids, upsert_vectors, cat[upsert_ids])
        self.table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(changed)
        for start in range(0, len(delete_ids), 10_000):
            chunk = delete_ids[start : start + 10_000]
            self.table.delete("id IN (" + ",".join(str(int(i)) for i in chunk) + ")")


PEERS = {p.name: p for p in (FaissIvfFlat, FaissHnsw, LanceDb)}


def record(workload: str, peer: VectorPeer, rows: int, seconds: float, **extra) -> dict:
    out = {
        "workload": workload,
        "system": peer.name,
        "status": "ok",
        "rows": int(rows),
        "seconds": round(seconds, 6),
        "rows_per_s": round(rows / seconds, 1) if seconds > 0 else None,
        "peak_rss_bytes": peak_rss_bytes(),
        "index": peer.index_label,
    }
    out.update(extra)
    return out


def run(peer: VectorPeer) -> None:
    data = peer.data
    base = data.load("base")
    cat = data.load("cat")
    queries = data.load("queries")
    truth = data.load("truth")
    started = time.perf_counter()
    load_seconds = peer.build(base, cat)
    build_seconds = time.perf_counter() - started - load_seconds
    emit(record("vector_build", peer, len(base), build_seconds, load_seconds=round(load_seconds, 3), dim=base.shape[1]))

    points = []
    for width in peer.widths:
        results, seconds = timed_queries(peer.searcher(width), queries)
        point = record(
            "vector_search",
            peer,
            len(queries),
            seconds,
            width_name=peer.width_name,
            width=width,
            recall_at_10=round(recall_at_k([r[0] for r in results], truth), 4),
        )
        emit(point)
        points.append(point)
        if point["recall_at_10"] >= 0.999 or seconds > POINT_BUDGET_S:
            break
    width = operating_point(points)["width"]

    for per_mille in SELECTIVITIES_PER_MILLE:
        want = data.load(f"truth_filter_{per_mille}")
        results, seconds = timed_queries(peer.searcher(width, per_mille), queries)
        emit(
            record(
                "vector_filter",
                peer,
                len(queries),
                seconds,
                width_name=peer.width_name,
                width=width,
                selectivity=per_mille / 1000,
                recall_at_10=round(recall_at_k([r[0] for r in results], want), 4),
            )
        )

    reason = peer.churn_unsupported()
    if reason:
        emit(not_applicable("vector_churn", peer.name, reason))
        return
    upsert_ids = data.load("upsert_ids")
    upsert_vectors = data.load("upsert_vectors")
    delete_ids = data.load("delete_ids")
    started = time.perf_counter()
    peer.apply_churn(upsert_ids, upsert_vectors, cat, delete_ids)
    write_seconds = time.perf_counter() - started
    current = np.array(base)
    current[upsert_ids] = upsert_vectors
    results, seconds = timed_queries(peer.searcher(width), queries)
    emit(
        record(
            "vector_churn",
            peer,
            len(queries),
            seconds,
            width_name=peer.width_name,
            width=width,
            recall_at_10=round(recall_at_k([r[0] for r in results], data.load("truth_churn")), 4),
            stale_rows=stale_rows(results, queries, current, delete_ids),
            upserted=len(upsert_ids),
            deleted=len(delete_ids),
            write_seconds=round(write_seconds, 3),
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the vector scale's data directory")
    parser.add_argument("--system", required=True, choices=sorted(PEERS))
    args = parser.parse_args()
    data = VectorDir(Path(args.data).resolve())
    peer = PEERS[args.system](data)
    try:
        run(peer)
    except Exception as e:
        traceback.print_exc(file=sys.stderr)
        emit(failure("vector", peer.name, "error", f"{type(e).__name__}: {str(e)[:500]}"))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
