"""Exact order statistics and quantiles computed by Spark equal numpy's on the full column, while the driver
only ever receives histograms (a few thousand rows) and the final small bins."""

from __future__ import annotations

import numpy as np
import pytest

from dhs.sampling.stratify import edge_probabilities, quantile_edges
from dhs.stages.order_stats import exact_quantiles, order_statistics


def _frame(spark, values):
    return spark.createDataFrame([(None if v is None else float(v),) for v in values], "v double")


def test_quantile_edges_equal_numpy_bit_for_bit():
    rng = np.random.default_rng(5)
    for i in range(500):
        n = int(rng.integers(1, 300))
        v = rng.normal(size=n)
        if i % 2:
            v = np.round(v, 1)                      # ties
        nb = int(rng.integers(1, 10))
        assert np.array_equal(quantile_edges(v, nb), np.quantile(v, np.linspace(0, 1, nb + 1)))


@pytest.mark.parametrize("bins, exact_max", [pytest.param(8, 10, marks=pytest.mark.slow), (4096, 100_000)])
def test_order_statistics_match_sorted_values(spark, bins, exact_max):
    rng = np.random.default_rng(1)
    v = np.concatenate([rng.lognormal(0, 1, 3000), np.full(700, 2.5), np.round(rng.normal(24, 0.3, 1000), 2)])
    ranks = [0, 1, 17, 2999, 3000, 3500, 4699, len(v) - 1]
    vals = list(v) + [None, float("nan"), float("inf")]
    n, got = order_statistics(_frame(spark, vals), "v", ranks, bins=bins, exact_max=exact_max)
    ref = np.sort(v)
    assert n == len(v)
    assert got == {k: float(ref[k]) for k in ranks}


def test_exact_quantiles_equal_numpy_and_fail_without_values(spark):
    rng = np.random.default_rng(2)
    v = np.round(rng.gamma(4.0, 0.1, 5000) + 0.9, 3)
    p = edge_probabilities(4)
    got = exact_quantiles(_frame(spark, v), "v", p, bins=16, exact_max=50)
    assert np.array_equal(got, np.quantile(v, p))
    with pytest.raises(ValueError, match="no finite values"):
        exact_quantiles(_frame(spark, [None, float("nan")]), "v", p)
    with pytest.raises(ValueError, match="outside"):
        order_statistics(_frame(spark, [1.0, 2.0]), "v", [2])


def test_cross_split_pairs_in_spark_equal_astropy(spark):
    """The Spark pair count over sky cells equals astropy's search_around_sky, near the equator, at high
    declination and across RA = 0."""
    from dhs.reallens.validation import cross_split_neighbours
    from dhs.stages.stage6 import cross_split_pairs

    rng = np.random.default_rng(3)
    rows = []
    for k, (ra0, dec0) in enumerate(((10.0, 0.0), (359.99, 5.0), (120.0, 87.0))):
        ra = np.mod(ra0 + rng.uniform(0, 0.02, 300), 360.0)
        dec = dec0 + rng.uniform(0, 0.02, 300)
        split = rng.choice(["train", "val"], 300)
        rows += [(f"g{k}_{i}", s, float(a), float(d)) for i, (s, a, d) in enumerate(zip(split, ra, dec))]
    df = spark.createDataFrame(rows, "galaxy_id string, region_split string, ra double, dec double")
    ref = cross_split_neighbours(np.array([r[2] for r in rows]), np.array([r[3] for r in rows]),
                                 [r[1] for r in rows], 11.0)
    got = cross_split_pairs(df, 11.0)
    assert ref["pairs"] > 100
    assert got == ref
