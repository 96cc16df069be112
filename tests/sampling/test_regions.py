"""Brick adjacency (RA wrap, several declinations), capped region growth, region metrics, quality cuts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from dhs.sampling.regions import (
    QualityCuts,
    brick_adjacency,
    brick_area_deg2,
    brick_quality,
    grow_regions,
    region_metrics,
)
from dhs.survey.bricks import bricks_at


def _bricks_over(ra_ranges, dec_range, step=0.05):
    """The real DR10 bricks covering the given RA ranges × Dec range (via desiutil)."""
    ras = np.concatenate([np.arange(a, b, step) for a, b in ra_ranges])
    decs = np.arange(dec_range[0], dec_range[1], step)
    rr, dd = np.meshgrid(ras % 360.0, decs)
    b = bricks_at(rr.ravel(), dd.ravel())
    _, first = np.unique(b["brickname"], return_index=True)
    return {k: v[np.sort(first)] for k, v in b.items()}


@pytest.fixture(scope="module")
def wrap_bricks():
    parts = [_bricks_over([(358.8, 360.0), (0.0, 1.2)], d) for d in ((-0.6, 0.6), (29.5, 30.6), (59.6, 60.6), (84.6, 85.6))]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _reference_neighbours(b, n_samples=400, eps=1e-4):
    """Independent adjacency: probe points just outside each brick edge and look up their brick (desiutil)."""
    names = b["brickname"]
    index = {n: i for i, n in enumerate(names)}
    pairs = set()
    t = (np.arange(n_samples) + 0.5) / n_samples
    for i in range(len(names)):
        ra1, ra2, d1, d2 = b["ra1"][i], b["ra2"][i], b["dec1"][i], b["dec2"][i]
        ra_s = ra1 + t * (ra2 - ra1)
        dec_s = d1 + t * (d2 - d1)
        probes_ra = np.concatenate([ra_s, ra_s, np.full(n_samples, ra1 - eps), np.full(n_samples, ra2 + eps)])
        probes_dec = np.concatenate([np.full(n_samples, d2 + eps), np.full(n_samples, d1 - eps), dec_s, dec_s])
        for nm in np.unique(bricks_at(probes_ra % 360.0, probes_dec)["brickname"]):
            j = index.get(str(nm))
            if j is not None and j != i:
                pairs.add((min(i, j), max(i, j)))
    return pairs


def test_adjacency_matches_probe_reference_across_wrap(wrap_bricks):
    b = wrap_bricks
    i, j, shared = brick_adjacency(b["ra1"], b["ra2"], b["dec1"], b["dec2"])
    mine = set(zip(i.tolist(), j.tolist()))
    ref = _reference_neighbours(b)
    assert mine == ref
    assert np.all(shared > 0)
    # explicit wrap pair: the brick starting at RA 0 and the one ending at RA 360 in the equatorial row
    names = list(b["brickname"])
    a, c = names.index("0001p000"), names.index("3598p000")
    assert (min(a, c), max(a, c)) in mine
    # no pair spans two declination groups
    assert np.all(np.abs(b["dec"][i] - b["dec"][j]) < 0.3)


def test_shared_edge_lengths_respect_cos_dec(wrap_bricks):
    b = wrap_bricks
    i, j, shared = brick_adjacency(b["ra1"], b["ra2"], b["dec1"], b["dec2"])
    same_row = np.abs(b["dec"][i] - b["dec"][j]) < 1e-9
    np.testing.assert_allclose(shared[same_row], 0.25, rtol=1e-9)  # Dec height
    vert = ~same_row
    # a Dec-neighbour edge is never longer (on the sky) than either brick's width at that edge
    edge_dec = np.where(b["dec"][i] < b["dec"][j], b["dec2"][i], b["dec1"][i])
    width_i = (b["ra2"][i] - b["ra1"][i]) * np.cos(np.radians(edge_dec))
    assert np.all(shared[vert] <= width_i[vert] + 1e-9)
    # at Dec 85 the RA widths are ~2.9 deg but the on-sky edges stay ≲ 0.26 deg
    hi = vert & (b["dec"][i] > 80)
    assert hi.any() and shared[hi].max() < 0.26


def test_corner_contact_is_not_adjacency():
    # two 0.25° squares touching only at a corner
    i, _, _ = brick_adjacency(np.array([10.0, 10.25]), np.array([10.25, 10.5]),
                              np.array([0.0, 0.25]), np.array([0.25, 0.5]))
    assert len(i) == 0


def _components(n, i, j):
    m = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    return connected_components(m, directed=False)[1]


@pytest.mark.parametrize("cap", [1, 4, 16])
def test_region_growth_cap_connectivity_and_wrap(wrap_bricks, cap):
    b = wrap_bricks
    ok = np.ones(len(b["ra1"]), dtype=bool)
    ok[::7] = False  # holes (bad quality)
    region = grow_regions(b["ra1"], b["ra2"], b["dec1"], b["dec2"], ok, max_bricks=cap, keys=b["brickname"])
    assert np.all(region[~ok] == -1) and np.all(region[ok] >= 0)
    sizes = np.bincount(region[ok])
    assert sizes.max() <= cap
    i, j, _ = brick_adjacency(b["ra1"], b["ra2"], b["dec1"], b["dec2"])
    # each region is connected through its own bricks
    for rid in np.unique(region[ok]):
        members = np.flatnonzero(region == rid)
        local = {m: k for k, m in enumerate(members)}
        sel = np.isin(i, members) & np.isin(j, members)
        comp = _components(len(members), np.array([local[x] for x in i[sel]], dtype=int),
                           np.array([local[x] for x in j[sel]], dtype=int))
        assert len(np.unique(comp)) == 1, rid
    if cap >= 4:
        # some region crosses RA = 0/360
        crosses = [rid for rid in np.unique(region[ok])
                   if (b["ra"][region == rid] > 300).any() and (b["ra"][region == rid] < 60).any()]
        assert crosses
        # greedy compact growth fills most regions to the cap on a contiguous field
        assert np.median(sizes) >= cap / 2


def test_region_growth_independent_of_row_order(wrap_bricks):
    b = wrap_bricks
    ok = np.ones(len(b["ra1"]), dtype=bool)
    r1 = grow_regions(b["ra1"], b["ra2"], b["dec1"], b["dec2"], ok, max_bricks=9, keys=b["brickname"])
    perm = np.random.default_rng(3).permutation(len(ok))
    r2 = grow_regions(b["ra1"][perm], b["ra2"][perm], b["dec1"][perm], b["dec2"][perm], ok[perm], max_bricks=9,
                      keys=b["brickname"][perm])
    np.testing.assert_array_equal(r1[perm], r2)


def test_no_region_dominates_large_field():
    b = _bricks_over([(150.0, 160.0)], (-5.0, 5.0), step=0.1)
    n = len(b["ra1"])
    assert n > 1500
    region = grow_regions(b["ra1"], b["ra2"], b["dec1"], b["dec2"], np.ones(n, bool), max_bricks=64,
                          max_area_deg2=3.0, keys=b["brickname"])
    sizes = np.bincount(region)
    areas = np.bincount(region, weights=brick_area_deg2(b["ra1"], b["ra2"], b["dec1"], b["dec2"]))
    assert sizes.max() <= 64 and areas.max() <= 3.0 + 1e-9
    # ~100 deg² field, 3 deg² cap: ≥ 34 regions, none above 3 % of the area
    assert len(areas) >= 34 and areas.max() / areas.sum() < 0.03


def test_area_and_compactness_analytic():
    # 0.25° squares at the equator: single brick, a 2×2 block and a 1×4 strip
    def grid(nx, ny):
        ra1 = np.repeat(np.arange(nx) * 0.25, ny) + 100.0
        dec1 = np.tile(np.arange(ny) * 0.25, nx) - 0.25 * ny / 2
        return ra1, ra1 + 0.25, dec1, dec1 + 0.25

    for (nx, ny), perim in (((1, 1), 1.0), ((2, 2), 2.0), ((4, 1), 2.5)):
        ra1, ra2, dec1, dec2 = grid(nx, ny)
        n = nx * ny
        bricks = {"ra1": ra1, "ra2": ra2, "dec1": dec1, "dec2": dec2, "n_gal": np.full(n, 10),
                      "psfsize_r": np.linspace(1.0, 1.4, n), "psfdepth_r_mag5": np.full(n, 24.0), "ebv": np.full(n, 0.05)}
        m = region_metrics(np.zeros(n, int), bricks, {"v2": np.full(n, 3)})
        area = 0.25 * nx * np.degrees(np.sin(np.radians(dec2.max())) - np.sin(np.radians(dec1.min())))
        np.testing.assert_allclose(m["area_deg2"], [area], rtol=1e-12)
        np.testing.assert_allclose(m["compactness"], [4 * np.pi * area / perim**2], rtol=2e-4)
        np.testing.assert_allclose(m["density_v2"], [3 * n / area], rtol=1e-12)
        assert m["n_bricks"][0] == n and m["n_gal"][0] == 10 * n and m["n_lrg_v2"][0] == 3 * n
        np.testing.assert_allclose(m["psfsize_r_p50"], [np.median(bricks["psfsize_r"])])
        np.testing.assert_allclose(m["psfsize_r_p90"], [np.percentile(bricks["psfsize_r"], 90)])
        np.testing.assert_allclose(m["ra_center"], [100.0 + 0.125 * nx], atol=1e-9)


def test_region_metrics_several_regions_and_wrap_centre():
    ra1 = np.array([359.75, 0.0, 50.0])
    bricks = {"ra1": ra1, "ra2": ra1 + 0.25, "dec1": np.zeros(3), "dec2": np.full(3, 0.25), "n_gal": np.array([5, 7, 9]),
                  "psfsize_r": np.array([1.0, 1.2, np.nan]), "psfdepth_r_mag5": np.array([24, 24.2, 24.4]),
                  "ebv": np.array([0.01, 0.02, 0.03])}
    m = region_metrics(np.array([4, 4, 9]), bricks, {"v": np.array([1, 2, 3])})
    assert m["region_id"].tolist() == [4, 9]
    assert m["n_bricks"].tolist() == [2, 1] and m["n_gal"].tolist() == [12, 9]
    assert abs(((m["ra_center"][0] + 180) % 360) - 180) < 1e-9  # centre of the wrap pair is RA 0
    assert np.isnan(m["psfsize_r_p50"][1])
    np.testing.assert_allclose(m["psfsize_r_p50"][0], 1.1)


def test_quality_cuts_inclusive_and_nan():
    ok, parts = brick_quality(
        ebv=np.array([0.12, 0.1201, 0.05, np.nan, 0.05]),
        psfsize_r=np.array([1.6, 1.0, 1.6001, 1.0, 1.0]),
        psfdepth_r_mag5=np.array([23.6, 24.0, 24.0, 24.0, np.nan]),
        n_gal=np.array([1, 1, 1, 1, 1]),
        cuts=QualityCuts(),
    )
    assert ok.tolist() == [True, False, False, False, False]
    assert parts["ebv"].tolist() == [True, False, True, False, True]
