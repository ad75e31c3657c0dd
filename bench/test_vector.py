"""Tests of the vector workload's machinery: the generator, its exact ground
truth, the peers' recall and staleness checks, the driver and the report.

    bench/.venv/bin/python -m unittest discover -s bench -p 'test_*.py'
"""

from __future__ import annotations

import sys
import tempfile
import unittest
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402
import suite  # noqa: E402
import vector_data as vd  # noqa: E402
import vector_peers  # noqa: E402

MICRO = vd.VectorScale(rows=3_000, dim=32, queries=20, intrinsic_dim=8, seed=11)


def brute_force(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """The k nearest by the textbook definition: every distance, sorted."""
    out = []
    for q in queries.astype(np.float64):
        d = np.sqrt(((base.astype(np.float64) - q) ** 2).sum(axis=1))
        out.append(np.lexsort((np.arange(len(base)), d))[:k])
    return np.array(out)


class GeneratorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.data = vd.generate(MICRO, vd.VectorDir(Path(cls.tmp.name) / MICRO.name), log=lambda _: None)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_same_seed_same_bytes(self):
        with tempfile.TemporaryDirectory() as other:
            again = vd.generate(MICRO, vd.VectorDir(Path(other) / "a"), log=lambda _: None)
            for name in ("base", "queries", "cat", "truth", "upsert_ids", "upsert_vectors", "delete_ids", "truth_churn"):
                np.testing.assert_array_equal(self.data.load(name), again.load(name), name)
            changed = vd.VectorScale(**{**MICRO.to_json(), "seed": 12})
            other_data = vd.generate(changed, vd.VectorDir(Path(other) / "b"), log=lambda _: None)
            self.assertFalse(np.array_equal(other_data.load("base"), self.data.load("base")))

    def test_shapes_and_meta(self):
        self.assertEqual(self.data.load("base").shape, (MICRO.rows, MICRO.dim))
        self.assertEqual(self.data.load("base").dtype, np.float32)
        self.assertEqual(self.data.load("queries").shape, (MICRO.queries, MICRO.dim))
        self.assertEqual(self.data.load("truth").shape, (MICRO.queries, vd.TRUTH_K))
        self.assertEqual(self.data.scale(), MICRO)
        self.assertEqual(self.data.meta()["nlist"], MICRO.nlist)
        self.assertTrue(self.data.complete(MICRO))
        cat = self.data.load("cat")
        self.assertTrue(0 <= cat.min() and cat.max() < vd.CATEGORIES)

    def test_vectors_live_in_a_low_dimensional_space(self):
        # Centred, the data's variance sits in intrinsic_dim directions; the
        # rest is the small isotropic noise.
        base = self.data.load("base").astype(np.float64)
        s = np.linalg.svd(base - base.mean(axis=0), compute_uv=False) ** 2
        inside = s[: MICRO.intrinsic_dim].sum() / s.sum()
        self.assertGreater(inside, 0.9)
        self.assertLess(s[MICRO.intrinsic_dim] / s[0], 0.05)

    def test_truth_is_brute_force(self):
        base, queries = self.data.load("base"), self.data.load("queries")
        truth = self.data.load("truth")
        np.testing.assert_array_equal(truth, brute_force(base, queries, vd.TRUTH_K))
        dist = self.data.load("truth_dist")
        self.assertTrue(np.all(np.diff(dist, axis=1) >= 0))
        d0 = np.linalg.norm(base[truth[0, 0]].astype(np.float64) - queries[0].astype(np.float64))
        self.assertAlmostEqual(dist[0, 0], d0, places=9)

    def test_filtered_truth_is_brute_force_over_the_matching_rows(self):
        base, queries, cat = self.data.load("base"), self.data.load("queries"), self.data.load("cat")
        for per_mille in vd.SELECTIVITIES_PER_MILLE:
            truth = self.data.load(f"truth_filter_{per_mille}")
            ids = np.flatnonzero(cat < per_mille)
            want = brute_force(base[ids], queries, min(vd.TRUTH_K, len(ids)))
            np.testing.assert_array_equal(truth[:, : want.shape[1]], ids[want], per_mille)
            # Fewer matching rows than 100: the rest is padding.
            self.assertTrue(np.all(truth[:, want.shape[1] :] == -1))

    def test_churn_and_the_truth_after_it(self):
        up, down = self.data.load("upsert_ids"), self.data.load("delete_ids")
        self.assertEqual(len(up), MICRO.upserts)
        self.assertEqual(len(down), MICRO.deletes)
        self.assertEqual(len(np.intersect1d(up, down)), 0)
        base, queries = self.data.load("base"), self.data.load("queries")
        vectors = self.data.load("upsert_vectors")
        self.assertFalse(np.array_equal(vectors, base[up]))
        truth = self.data.load("truth_churn")
        self.assertEqual(len(np.intersect1d(truth, down)), 0)
        current = base.copy()
        current[up] = vectors
        live = np.setdiff1d(np.arange(MICRO.rows), down)
        want = live[brute_force(current[live], queries, vd.TRUTH_K)]
        np.testing.assert_array_equal(truth, want)

    def test_exact_top_k_pads_and_names_rows(self):
        base = np.array([[0.0, 0.0], [3.0, 0.0], [1.0, 0.0]], dtype=np.float32)
        ids, dist = vd.exact_top_k(base, np.array([[0.9, 0.0]], dtype=np.float32), k=5, ids=np.array([10, 30, 20]), block=2)
        self.assertEqual(ids.tolist(), [[20, 10, 30, -1, -1]])
        np.testing.assert_allclose(dist[0, :3], [0.1, 0.9, 2.1], atol=1e-6)
        self.assertTrue(np.isinf(dist[0, 3:]).all())

    def test_nlist_is_a_power_of_two_near_sqrt_rows(self):
        self.assertEqual(vd.VectorScale(rows=1_000_000).nlist, 1024)
        self.assertEqual(vd.VectorScale(rows=200_000).nlist, 512)
        self.assertEqual(vd.VectorScale(rows=50).nlist, 1)


class ChecksTest(unittest.TestCase):
    def test_recall_counts_the_true_top_k(self):
        truth = np.array([[1, 2, 3, -1], [4, 5, -1, -1], [-1, -1, -1, -1]])
        got = [np.array([3, 9, 1]), np.array([5]), np.array([])]
        # Query 1: 2 of 3; query 2: 1 of 2; query 3 has no matching row.
        self.assertAlmostEqual(vector_peers.recall_at_k(got, truth, k=3), (2 / 3 + 1 / 2) / 2)

    def test_stale_rows_are_deleted_rows_or_old_vectors(self):
        current = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]], dtype=np.float32)
        queries = np.zeros((1, 2), dtype=np.float32)
        fresh = [(np.array([0, 1]), np.array([0.0, 1.0]))]
        self.assertEqual(vector_peers.stale_rows(fresh, queries, current, np.array([], dtype=np.int64)), 0)
        self.assertEqual(vector_peers.stale_rows(fresh, queries, current, np.array([1])), 1)
        old_version = [(np.array([2]), np.array([0.5]))]
        self.assertEqual(vector_peers.stale_rows(old_version, queries, current, np.array([], dtype=np.int64)), 1)

    def test_operating_point_is_the_fastest_that_reaches_the_target(self):
        points = [{"width": w, "recall_at_10": r, "rows_per_s": q} for w, r, q in [(1, 0.8, 900), (2, 0.96, 500), (4, 0.99, 300)]]
        self.assertEqual(vector_peers.operating_point(points)["width"], 2)
        self.assertEqual(vector_peers.operating_point(points[:1])["width"], 1)


def rec(workload, system, qps, **extra):
    return {"workload": workload, "system": system, "status": "ok", "rows": 100, "seconds": 100 / qps, "rows_per_s": qps,
            "peak_rss_bytes": 2**30, "index": "IVF", "width_name": "nprobe", **extra}


class DriverAndReportTest(unittest.TestCase):
    def test_the_vector_workload_runs_its_own_programs(self):
        self.assertEqual(suite.expand_only(["vector"]), ["vector"])
        vdata = vd.VectorDir(Path("/v"))
        self.assertEqual(suite.vector_command("tidelake", vdata, Path("/bin/tvb")), ["/bin/tvb", "--data", "/v"])
        peer = suite.vector_command("lancedb", vdata, Path("/bin/tvb"))
        self.assertEqual(peer[-2:], ["--system", "lancedb"])
        self.assertTrue(peer[1].endswith("vector_peers.py"))

    def test_ratios_are_at_equal_recall(self):
        records = [
            rec("vector_build", "tidelake", 10.0, load_seconds=3.0),
            rec("vector_search", "tidelake", 4000.0, width=4, recall_at_10=0.90),
            rec("vector_search", "tidelake", 2000.0, width=8, recall_at_10=0.96),
            rec("vector_build", "faiss_ivf_flat", 20.0, load_seconds=0.0),
            rec("vector_search", "faiss_ivf_flat", 5000.0, width=4, recall_at_10=0.94),
            rec("vector_search", "faiss_ivf_flat", 1000.0, width=8, recall_at_10=0.97),
            rec("vector_filter", "tidelake", 500.0, width=8, recall_at_10=1.0, selectivity=0.01),
            rec("vector_filter", "faiss_ivf_flat", 250.0, width=8, recall_at_10=0.5, selectivity=0.01),
            rec("vector_churn", "tidelake", 1000.0, width=8, recall_at_10=0.97, stale_rows=0, upserted=10, deleted=5,
                write_seconds=1.0, exact_rows_per_query=12.0),
            {"workload": "vector_churn", "system": "faiss_hnsw", "status": "n/a", "reason": "cannot remove"},
        ]
        text = report.render_vector(records, MICRO, "bench/run --only vector", 60.0)
        self.assertIn("| 2.00× |", text.splitlines()[[i for i, line in enumerate(text.splitlines()) if line.startswith("| faiss_ivf_flat | IVF")][0]])
        self.assertIn("| 1.0% | faiss_ivf_flat | nprobe=8 | 0.5000 | 250.0 | 2.00× |", text)
        self.assertIn("| tidelake | 10 | 5 | 1.0 | 0.9700 | 0 | 1.00 k |", text)
        self.assertIn("not reached", text)
        self.assertNotIn("Failures", text)
        spliced = report.splice_vector("# Results\n\nother\n", text)
        self.assertTrue(spliced.startswith("# Results\n\nother\n"))
        again = report.splice_vector(spliced, text.replace("60.0", "61.0").replace("1.0 minutes", "2.0 minutes"))
        self.assertEqual(again.count(report.VECTOR_BEGIN), 1)
        self.assertIn("other", again)
        self.assertIn("2.0 minutes", again)


if __name__ == "__main__":
    unittest.main()
