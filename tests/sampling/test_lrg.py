"""LRG variant cuts: boundaries, NaN, non-positive flux, PSF type, bytes TYPE, real DR10 seed rows."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from dhs.sampling import LRG_VARIANTS, lrg_flags
from dhs.sampling.lrg import evaluate_cuts, make_variant, parse_cut, variant_columns

ZP = 22.5


def flux_for_mag(m: float) -> float:
    """Nanomaggy flux whose float64 magnitude is m (as close as float64 allows)."""
    return 10.0 ** (-0.4 * (m - ZP))


def _row(**kw) -> dict[str, np.ndarray]:
    base = {"type": "DEV", "flux_g": 1.0, "flux_r": flux_for_mag(20.5), "flux_z": flux_for_mag(19.0),
                "flux_w1": flux_for_mag(16.0), "nobs_g": 2, "nobs_r": 2, "nobs_z": 2, "fracmasked_g": 0.0, "dec": 0.0}
    base.update(kw)
    return {k: np.atleast_1d(np.asarray(v)) for k, v in base.items()}


def _mag(f):
    f = np.asarray(f, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f > 0, ZP - 2.5 * np.log10(np.where(f > 0, f, 1.0)), np.nan)


def _reference(cols: dict, name: str) -> np.ndarray:
    """Independent re-statement of the issue's cuts (not using the cut parser)."""
    g, r, z, w1 = (_mag(cols[f"flux_{b}"]) for b in ("g", "r", "z", "w1"))
    types = np.array([t.decode() if isinstance(t, bytes) else str(t) for t in cols["type"]])
    not_psf = np.char.strip(types) != "PSF"
    table = {
        "v1_pure_massive": (20.0, 0.5, 1.6),
        "v2_baseline_dr10": (20.4, 0.4, 1.6),
        "v3_color_relaxed": (20.4, 0.4, 0.8),
        "v4_mag_relaxed": (21.0, 0.4, 0.8),
        "v5_very_relaxed": (21.5, 0.3, 0.8),
    }
    with np.errstate(invalid="ignore"):
        if name == "seed_phase3":
            return (not_psf & (r > 17) & (r < 21) & (g - r > 0.5) & (r - z > 0.2) & (cols["nobs_g"] >= 1)
                    & (cols["nobs_r"] >= 1) & (cols["nobs_z"] >= 1) & (cols["fracmasked_g"] < 0.3)
                    & (cols["dec"] < 32))
        zmax, rz, zw = table[name]
        return not_psf & (z < zmax) & (r - z > rz) & (z - w1 > zw)


def test_variant_table_is_as_specified():
    assert set(LRG_VARIANTS) == {"v1_pure_massive", "v2_baseline_dr10", "v3_color_relaxed", "v4_mag_relaxed",
                                 "v5_very_relaxed", "seed_phase3"}
    v1 = LRG_VARIANTS["v1_pure_massive"]
    assert [c.expr for c in v1.cuts] == ["type != PSF", "mag_z < 20.0", "mag_r - mag_z > 0.5", "mag_z - mag_w1 > 1.6"]
    # every variant rejects PSF
    assert all(v.cuts[0].expr == "type != PSF" for v in LRG_VARIANTS.values())
    # a variant needs only the columns of its cuts
    assert LRG_VARIANTS["v2_baseline_dr10"].columns() == ("type", "flux_z", "flux_r", "flux_w1")
    assert "fracmasked_g" in variant_columns(["seed_phase3"]) and "flux_g" not in variant_columns(["v1_pure_massive"])


@pytest.mark.parametrize("name,zmax,rz,zw", [
    ("v1_pure_massive", 20.0, 0.5, 1.6),
    ("v2_baseline_dr10", 20.4, 0.4, 1.6),
    ("v3_color_relaxed", 20.4, 0.4, 0.8),
    ("v4_mag_relaxed", 21.0, 0.4, 0.8),
    ("v5_very_relaxed", 21.5, 0.3, 0.8),
])
def test_v_cuts_strict_at_boundaries(name, zmax, rz, zw):
    eps = 1e-9  # mag; far above float64 rounding of a magnitude (~1e-14)
    z = zmax - 0.3
    good = {"flux_z": flux_for_mag(z), "flux_r": flux_for_mag(z + rz + 0.2), "flux_w1": flux_for_mag(z - zw - 0.2)}
    assert lrg_flags(_row(**good), [name])[f"is_lrg_{name}"][0]
    # z magnitude exactly at and just beyond the limit (colours kept passing)
    for zval, expect in ((zmax - eps, True), (zmax + eps, False)):
        cols = _row(flux_z=flux_for_mag(zval), flux_r=flux_for_mag(zval + rz + 0.2),
                    flux_w1=flux_for_mag(zval - zw - 0.2))
        got = lrg_flags(cols, [name])[f"is_lrg_{name}"][0]
        assert got == expect == _reference(cols, name)[0], (zval, zmax)
    # colour r−z around its threshold
    for d, expect in ((+eps, True), (-eps, False)):
        cols = _row(flux_z=flux_for_mag(z), flux_r=flux_for_mag(z + rz + d), flux_w1=flux_for_mag(z - zw - 0.2))
        assert lrg_flags(cols, [name])[f"is_lrg_{name}"][0] == expect
    for d, expect in ((+eps, True), (-eps, False)):
        cols = _row(flux_z=flux_for_mag(z), flux_r=flux_for_mag(z + rz + 0.2), flux_w1=flux_for_mag(z - zw - d))
        assert lrg_flags(cols, [name])[f"is_lrg_{name}"][0] == expect


def test_exact_equality_fails_strict_cut():
    # Build fluxes whose float64 magnitudes sit exactly on the r−z threshold: r − z == 0.5 exactly.
    from dhs.survey.photometry import flux_to_mag

    fz = np.float64(flux_for_mag(19.0))
    mz = flux_to_mag(fz)
    cands = flux_for_mag(19.5) * (1 + np.arange(-2000, 2001) * 2e-16)
    mr = flux_to_mag(cands)
    exact = cands[(mr - mz) == 0.5]
    assert len(exact) > 0, "no flux gives exactly r−z = 0.5 in float64 (test construction)"
    cols = _row(flux_z=np.full(len(exact), fz), flux_r=exact, flux_w1=np.full(len(exact), flux_for_mag(17.0)),
                type=np.full(len(exact), "DEV"), flux_g=np.ones(len(exact)), nobs_g=np.ones(len(exact), int),
                nobs_r=np.ones(len(exact), int), nobs_z=np.ones(len(exact), int), fracmasked_g=np.zeros(len(exact)),
                dec=np.zeros(len(exact)))
    assert not lrg_flags(cols, ["v1_pure_massive"])["is_lrg_v1_pure_massive"].any()


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan])
@pytest.mark.parametrize("band", ["r", "z", "w1"])
def test_nonpositive_or_nan_flux_fails_every_variant(bad, band):
    cols = _row(**{f"flux_{band}": bad})
    for name, flag in lrg_flags(cols).items():
        if band == "w1" and name == "is_lrg_seed_phase3":
            continue  # seed_phase3 does not use W1
        assert not flag[0], (name, band, bad)


def test_nan_g_fails_seed_phase3_only():
    cols = _row(flux_g=-0.5, flux_r=flux_for_mag(20.0), flux_z=flux_for_mag(19.0))
    flags = lrg_flags(cols)
    assert not flags["is_lrg_seed_phase3"][0]
    assert flags["is_lrg_v5_very_relaxed"][0]
    cols["flux_g"] = np.array([flux_for_mag(20.0 + 0.9)])
    assert lrg_flags(cols)["is_lrg_seed_phase3"][0]


@pytest.mark.parametrize("psf", ["PSF", "PSF ", b"PSF", b"PSF "])
def test_psf_type_never_passes(psf):
    cols = _row(type=np.array([psf, b"DEV" if isinstance(psf, bytes) else "DEV"], dtype=object),
                **{k: np.repeat(v, 2) for k, v in _row().items() if k != "type"})
    flags = lrg_flags(cols)
    assert flags  # all built-ins evaluated
    for name, f in flags.items():
        assert not f[0], name
        if name != "is_lrg_seed_phase3":
            assert f[1], name  # same photometry, extended type: passes


def test_bytes_type_numpy_fixed_width():
    cols = _row()
    cols["type"] = np.array([b"PSF", b"SER", b"REX"], dtype="S3")
    for k in list(cols):
        if k != "type":
            cols[k] = np.repeat(cols[k], 3)
    f = lrg_flags(cols, ["v2_baseline_dr10"])["is_lrg_v2_baseline_dr10"]
    assert f.tolist() == [False, True, True]


@pytest.mark.parametrize("col,val,expect", [
    ("nobs_g", 0, False), ("nobs_g", 1, True), ("nobs_r", 0, False), ("nobs_z", 0, False),
    ("fracmasked_g", 0.3, False), ("fracmasked_g", 0.2999999, True), ("fracmasked_g", np.nan, False),
    ("dec", 32.0, False), ("dec", 31.99999, True), ("dec", np.nan, False),
])
def test_seed_phase3_side_cuts(col, val, expect):
    cols = _row(flux_g=flux_for_mag(21.0), flux_r=flux_for_mag(20.0), flux_z=flux_for_mag(19.5), **{col: val})
    assert lrg_flags(cols, ["seed_phase3"])["is_lrg_seed_phase3"][0] == expect


@pytest.mark.parametrize("r,expect", [(17.0 + 1e-9, True), (17.0 - 1e-9, False), (21.0 - 1e-9, True), (21.0 + 1e-9, False)])
def test_seed_phase3_r_window(r, expect):
    cols = _row(flux_g=flux_for_mag(r + 0.8), flux_r=flux_for_mag(r), flux_z=flux_for_mag(r - 0.5))
    assert lrg_flags(cols, ["seed_phase3"])["is_lrg_seed_phase3"][0] == expect


def test_missing_column_named_and_default_skips_absent():
    cols = _row()
    del cols["fracmasked_g"]
    with pytest.raises(KeyError, match="fracmasked_g"):
        lrg_flags(cols, ["seed_phase3"])
    assert "is_lrg_seed_phase3" not in lrg_flags(cols)
    assert "is_lrg_v1_pure_massive" in lrg_flags(cols)
    # a variant reads only its columns: v1 works with just its four
    minimal = {k: cols[k] for k in ("type", "flux_r", "flux_z", "flux_w1")}
    assert set(lrg_flags(minimal)) == {f"is_lrg_{n}" for n in LRG_VARIANTS if n != "seed_phase3"}
    with pytest.raises(KeyError, match="unknown LRG variant 'v9'"):
        lrg_flags(cols, ["v9"])


def test_unequal_lengths_and_bad_cut_rejected():
    cols = _row()
    cols["flux_z"] = np.array([1.0, 2.0])
    with pytest.raises(ValueError, match="different lengths"):
        lrg_flags(cols, ["v1_pure_massive"])
    with pytest.raises(ValueError, match="cannot parse LRG cut"):
        parse_cut("mag_z << 3")
    with pytest.raises(ValueError, match="variant name"):
        make_variant("Bad-Name", ["mag_z < 20"])


def test_fail_counts_per_cut():
    cols = {k: np.repeat(v, 4) for k, v in _row().items()}
    cols["type"] = np.array(["PSF", "DEV", "DEV", "DEV"])
    cols["flux_z"] = np.array([flux_for_mag(19.0), flux_for_mag(20.5), 0.0, flux_for_mag(19.0)])
    flags, counts = evaluate_cuts(cols, ["v1_pure_massive"])
    c = counts["v1_pure_massive"]
    assert c["type != PSF"] == 1
    assert c["mag_z < 20.0"] == 2  # 20.5 and NaN
    assert flags["is_lrg_v1_pure_massive"].tolist() == [False, False, False, True]


def test_mag_columns_give_same_flags_as_flux():
    from dhs.survey.photometry import flux_to_mag

    rng = np.random.default_rng(5)
    n = 5000
    cols = {"type": rng.choice(["DEV", "PSF", "SER"], n),
            **{f"flux_{b}": rng.normal(5, 5, n).astype(np.float32) for b in ("g", "r", "z", "w1")}}
    a = lrg_flags(cols)
    stored = {"type": cols["type"], **{f"mag_{b}": flux_to_mag(cols[f"flux_{b}"]) for b in ("g", "r", "z", "w1")}}
    b = lrg_flags(stored, [n for n in LRG_VARIANTS if n != "seed_phase3"])
    for k in b:
        np.testing.assert_array_equal(a[k], b[k])


def test_seed_dr10_rows_reproduce_flags(shared_data):
    path = shared_data / "legacysurvey" / "dr10-lrg-parents-seed" / "phase3_lrg_parent_catalog_density_v3.parquet"
    t = pq.read_table(path)
    assert t.num_rows == 1509
    cols = {c.lower(): t[c].to_numpy(zero_copy_only=False) for c in ("TYPE", "FLUX_G", "FLUX_R", "FLUX_Z", "FLUX_W1")}
    flags = lrg_flags(cols)
    psf = np.char.strip(cols["type"].astype(str)) == "PSF"
    assert psf.sum() == 183
    mapping = {"v1": "v1_pure_massive", "v2": "v2_baseline_dr10", "v3": "v3_color_relaxed",
               "v4": "v4_mag_relaxed", "v5": "v5_very_relaxed"}
    for short, name in mapping.items():
        seed = t[f"is_lrg_{short}"].to_numpy()
        mine = flags[f"is_lrg_{name}"]
        np.testing.assert_array_equal(mine[~psf], seed[~psf], err_msg=name)
        assert not mine[psf].any(), name
        assert seed[psf].any()  # the seed let PSF rows in; we do not
    # our float64 magnitudes equal the seed's stored double magnitudes
    from dhs.survey.photometry import flux_to_mag

    np.testing.assert_array_equal(flux_to_mag(cols["flux_z"]), t["z_mag"].to_numpy())
    g_nan = np.isnan(t["g_mag"].to_numpy())
    assert g_nan.sum() > 0 and np.array_equal(g_nan, ~(cols["flux_g"] > 0))
