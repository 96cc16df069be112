"""Positive crossmatch against the real lens tables, ties, duplicates, tiers."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from dhs.config.stage6 import Stage6Config, TierSettings
from dhs.io.lens_tables import read_lens_table
from dhs.reallens.crossmatch import assign_tiers, candidate_pairs, resolve_matches
from dhs.reallens.sweep_task import process_sweep
from dhs.sampling.hashing import rng_from_seed
from tests.reallens.sweep_factory import default_columns, write_sweep

RADIUS = 5.0


def _offset(ra, dec, pa_deg, sep_arcsec):
    c = SkyCoord(ra * u.deg, dec * u.deg).directional_offset_by(pa_deg * u.deg, sep_arcsec * u.arcsec)
    return c.ra.deg, c.dec.deg


@pytest.mark.parametrize("table", ["new_lenses.tsv", "training_lenses.tsv"])
def test_real_lenses_against_planted_sweep(shared_data, tmp_path, table):
    """Objects planted at known separations from 60 real lenses; decoys just beyond the radius."""
    lenses = read_lens_table(shared_data / "lenses" / table)
    rng = rng_from_seed(7)
    pick = np.sort(rng.choice(len(lenses), 80, replace=False))
    planted = pick[:60]           # get an object inside the radius (and a decoy outside)
    lonely = pick[60:]            # only a decoy outside the radius
    ra, dec, truth_sep, truth_lens = [], [], [], []
    for k, i in enumerate(planted.tolist()):
        sep = float(rng.uniform(0.05, 4.95))
        r, d = _offset(lenses.ra[i], lenses.dec[i], float(rng.uniform(0, 360)), sep)
        ra.append(r), dec.append(d), truth_sep.append(sep), truth_lens.append(i)
        r2, d2 = _offset(lenses.ra[i], lenses.dec[i], float(rng.uniform(0, 360)), float(rng.uniform(5.05, 9.0)))
        ra.append(r2), dec.append(d2), truth_sep.append(np.nan), truth_lens.append(-1)
    for i in lonely.tolist():
        r, d = _offset(lenses.ra[i], lenses.dec[i], float(rng.uniform(0, 360)), float(rng.uniform(5.001, 7.0)))
        ra.append(r), dec.append(d), truth_sep.append(np.nan), truth_lens.append(-1)
    n = len(ra)
    cols = default_columns(n)
    cols["ra"], cols["dec"] = np.array(ra), np.array(dec)
    cols["objid"] = np.arange(n, dtype=np.int32)
    path = write_sweep(str(tmp_path / "sweep-planted.fits"), cols)
    st = Stage6Config(match_radius_arcsec=RADIUS)
    cand, _, summary = process_sweep(path, lenses.ra, lenses.dec, st, seed=1)
    assert summary["error"] is None and summary["rows_read"] == n
    assert np.all(cand["sep_arcsec"].to_numpy() <= RADIUS)
    res = resolve_matches(lenses.lens_id.tolist(), cand["lens_index"].to_numpy(), cand["galaxy_id"].to_pylist(),
                          cand["sep_arcsec"].to_numpy())
    counts = res.counts()
    assert counts["matched"] == 60 and counts["duplicate"] == 0 and counts["unmatched"] == len(lenses) - 60
    for obj, (i, sep) in enumerate(zip(truth_lens, truth_sep)):
        if i < 0:
            continue
        assert res.status[i] == "matched"
        assert res.object_key[i] == f"0001p000_{obj}"
        assert res.sep_arcsec[i] == pytest.approx(sep, abs=1e-6)   # float64 positions: µas agreement
    assert np.all(res.status[lonely] == "unmatched")
    assert np.all(np.isnan(res.sep_arcsec[lonely]))


def test_boundary_is_inclusive_and_float64():
    # a lens at RA 359.99 deg: float32 RA has 0.11" steps there and would move objects across the radius
    lra, ldec = np.array([359.99]), np.array([20.0])
    r_in, d_in = _offset(359.99, 20.0, 90.0, RADIUS - 1e-4)
    r_out, d_out = _offset(359.99, 20.0, 90.0, RADIUS + 1e-4)
    _il, io, sep = candidate_pairs(lra, ldec, np.array([r_in, r_out]), np.array([d_in, d_out]), RADIUS)
    assert io.tolist() == [0]
    assert sep[0] == pytest.approx(RADIUS - 1e-4, abs=1e-7)


def test_tie_goes_to_smallest_key_whatever_the_order():
    # lens on the equator, two objects mirrored in Dec: identical separations in float64
    lra, ldec = np.array([45.0]), np.array([0.0])
    ora, odec = np.array([45.0, 45.0]), np.array([2.0 / 3600, -2.0 / 3600])
    il, io, sep = candidate_pairs(lra, ldec, ora, odec, RADIUS)
    assert sep[0] == sep[1]
    for keys in (["b_2", "a_1"], ["a_1", "b_2"]):
        res = resolve_matches(["L"], il, [keys[j] for j in io.tolist()], sep)
        assert res.object_key[0] == "a_1" and res.n_within[0] == 2
        res = resolve_matches(["L"], il[::-1], [keys[j] for j in io[::-1].tolist()], sep[::-1])
        assert res.object_key[0] == "a_1"


def test_duplicates_and_repeated_pairs():
    # two catalogue entries for one lens: the closer one wins, the other names it
    res = resolve_matches(["L1", "L2", "L3"], np.array([0, 1, 1, 0]), ["g1", "g1", "g1", "g1"],
                          np.array([1.5, 0.5, 0.5, 1.5]))
    assert res.status.tolist() == ["duplicate", "matched", "unmatched"]
    assert res.duplicate_of.tolist() == ["L2", "", ""]
    assert res.n_within.tolist() == [1, 1, 0]  # the repeated (lens, object) pair counts once
    # equal separations: the smaller lens_id wins
    res = resolve_matches(["Z", "A"], np.array([0, 1]), ["g", "g"], np.array([1.0, 1.0]))
    assert res.status.tolist() == ["duplicate", "matched"]


def test_tiers_and_weights():
    tiers = TierSettings()
    t, w = assign_tiers(["A", "b", " confident ", "probable", "", "C"], tiers.grade_to_tier, tiers.default_tier,
                        tiers.weights)
    assert t.tolist() == ["A", "B", "A", "B", "B", "B"]
    assert w.tolist() == [1.0, 0.5, 1.0, 0.5, 0.5, 0.5]
    t, w = assign_tiers(["A", "B"], {"A": "A", "B": "B"}, "A", {"A": 2.0, "B": 0.25})
    assert w.tolist() == [2.0, 0.25]


@pytest.mark.parametrize("name", ["sweep-310m005-320p000.fits", "sweep-330m005-340p000.fits"])
def test_real_dr8_sweep_rows(shared_data, name):
    """The per-file task on a real (DR8 data model) sweep: lenses planted 0.5″ from two of its rows."""
    from dhs.survey.sweeps import read_sweep

    path = str(shared_data / "legacysurvey" / "dr8-south-rows" / name)
    t = read_sweep(path, columns=["ra", "dec", "brickname", "objid"]).to_pylist()
    lra, ldec = zip(*(_offset(r["ra"], r["dec"], 120.0, 0.5) for r in t[:2]))
    cand, neg, s = process_sweep(path, np.array(lra), np.array(ldec), Stage6Config(), seed=3)
    assert s["error"] is None and s["rows_read"] == len(t) == 6
    assert s["rows_read"] == s["pool_rows"] + sum(s["first_failed"].values())
    res = resolve_matches(["a", "b"], cand["lens_index"].to_numpy(), cand["galaxy_id"].to_pylist(),
                          cand["sep_arcsec"].to_numpy())
    assert res.object_key.tolist() == [f"{r['brickname']}_{r['objid']}" for r in t[:2]]
    np.testing.assert_allclose(res.sep_arcsec, 0.5, atol=1e-6)
    assert s["failed"]["known_lens"] >= 2   # the two rows next to a lens can never be negatives
