"""Stratified sampling: quotas (ratio, N1:N2, back-fill), hash order, gates."""

from __future__ import annotations

import numpy as np
import pytest

from dhs.config.stage6 import SamplingSettings
from dhs.reallens.sampling import gates, sample_hash, select, stratum_key, stratum_quotas


def test_quotas_ratio_split_and_backfill():
    s = SamplingSettings()   # 100 per positive, 15 % N2
    q = stratum_quotas({"3-5|SER": 2, "6-10|DEV": 1, "11+|REX": 0},
                       {("3-5|SER", "N1"): 10_000, ("3-5|SER", "N2"): 10_000,
                        ("6-10|DEV", "N1"): 1000, ("6-10|DEV", "N2"): 5}, s)
    assert set(q) == {"3-5|SER", "6-10|DEV"}  # no positives → no quota
    a = q["3-5|SER"]
    assert (a["target"], a["n1_take"], a["n2_take"], a["backfill"]) == (200, 170, 30, 0)
    b = q["6-10|DEV"]
    assert (b["target"], b["n2_target"], b["n2_take"], b["n1_take"], b["backfill"]) == (100, 15, 5, 95, 10)
    # N1 also short: take what there is
    c = stratum_quotas({"x": 1}, {("x", "N1"): 50, ("x", "N2"): 3}, s)["x"]
    assert (c["n1_take"], c["n2_take"]) == (50, 3)


def test_select_takes_smallest_hashes_order_independent():
    rng = np.random.default_rng(0)
    n = 3000
    ids = np.array([f"b_{i}" for i in range(n)])
    st = stratum_key(rng.choice(["1-2", "3-5"], n), rng.choice(["SER", "DEV"], n))
    pool = rng.choice(["N1", "N2"], n, p=[0.8, 0.2])
    h = sample_hash(ids.tolist(), 1234)
    s = SamplingSettings(neg_per_pos=10)
    counts = {}
    for k, p in zip(st.tolist(), pool.tolist()):
        counts[(k, p)] = counts.get((k, p), 0) + 1
    q = stratum_quotas({"1-2|SER": 3, "3-5|DEV": 5}, counts, s)
    take = select(st, pool, h, ids, q)
    for k, qq in q.items():
        for p in ("N1", "N2"):
            grp = (st == k) & (pool == p)
            chosen = take & grp
            assert chosen.sum() == qq[f"{p.lower()}_take"]
            if chosen.any() and (grp & ~take).any():
                assert h[chosen].max() < h[grp & ~take].min()   # exactly the smallest hashes
    perm = rng.permutation(n)
    take2 = select(st[perm], pool[perm], h[perm], ids[perm], q)
    np.testing.assert_array_equal(take2, take[perm])
    assert not take[(st == "1-2|DEV") | (st == "3-5|SER")].any()


def test_hash_is_64_bit_and_seeded():
    h = sample_hash([f"g_{i}" for i in range(2000)], 1)
    assert h.dtype == np.int64 and np.abs(h).max() > 2**40
    assert not np.array_equal(h, sample_hash([f"g_{i}" for i in range(2000)], 2))


def test_gates():
    s = SamplingSettings(neg_per_pos=10)
    q = stratum_quotas({"a": 1, "b": 1}, {("a", "N1"): 100, ("a", "N2"): 100, ("b", "N1"): 100,
                                          ("b", "N2"): 100}, s)
    g = gates(q, {("a", "N1"): 8, ("a", "N2"): 2, ("b", "N1"): 9, ("b", "N2"): 1}, s)
    assert g["total_reached"] and g["all_strata_represented"] and g["n1_share"] == pytest.approx(0.85)
    assert g["passed"]
    g = gates(q, {("a", "N1"): 10}, s)
    assert not g["total_reached"] and g["strata_missing_negatives"] == ["b"] and not g["n1_share_ok"]
    assert not g["passed"]
