"""Brick geometry against the official survey-bricks rows and the DR6 brick header."""

from __future__ import annotations

import glob

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from desiutil.brick import Bricks

from dhs.survey import bricks
from dhs.survey.bricks import brick_at, brick_by_name, brick_wcs, bricknames_at, validate_brickname

INT_COLS = ("brickid", "brickrow", "brickcol")
DEC_COLS = ("dec", "dec1", "dec2")
RA_COLS = ("ra", "ra1", "ra2")


def _rows(shared_data):
    files = sorted(glob.glob(str(shared_data / "legacysurvey/survey-bricks-rows/survey-bricks-*.fits.gz")))
    assert len(files) == 11
    out = []
    for f in files:
        t = Table.read(f)
        t.rename_columns(t.colnames, [c.lower() for c in t.colnames])
        assert len(t) == 1
        out.append((f, t[0]))
    return out


def test_survey_bricks_rows_reproduced_from_radec(shared_data):
    """All 11 official rows: name, id, row, col, q and Dec centre/bounds exactly; RA centre/bounds to
    1e-13 deg.

    The official file's RA values were computed with a different floating-point expression than
    desiutil's (np.linspace edges); in these rows they differ by at most 4 ULP (5.7e-14 deg = 2e-10″).
    """
    for f, r in _rows(shared_data):
        b = brick_at(float(r["ra"]), float(r["dec"]))
        assert b.brickname == r["brickname"], f
        for c in INT_COLS:
            assert getattr(b, c) == int(r[c]), (f, c)
        assert b.brickq == int(r["brickq"]), f
        for c in DEC_COLS:
            assert getattr(b, c) == float(r[c]), (f, c)
        for c in RA_COLS:
            assert abs(getattr(b, c) - float(r[c])) < 1e-13, (f, c, getattr(b, c), float(r[c]))
        # also from a point away from the centre, inside the brick
        b2 = brick_at(float(r["ra1"]) + 0.1 * (r["ra2"] - r["ra1"]), float(r["dec2"]) - 0.01)
        assert b2 == b
        # and by name lookup
        assert brick_by_name(str(r["brickname"])) == b


def test_dr6_brick_row(shared_data):
    t = Table.read(shared_data / "legacysurvey/dr6-brick-0959p805/survey-bricks.fits.gz")
    r = t[0]
    b = brick_by_name("0959p805")
    assert b.brickid == r["BRICKID"] and b.brickrow == r["BRICKROW"] and b.brickcol == r["BRICKCOL"]
    assert b.dec == 80.5 and b.dec1 == r["DEC1"] and b.dec2 == r["DEC2"]
    assert abs(b.ra - r["RA"]) < 1e-13


def test_area_matches_desiutil():
    rng = np.random.default_rng(3)
    ra = rng.uniform(0, 360, 50)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, 50)))
    areas = Bricks(0.25).brickarea(ra, dec)
    for r, d, a in zip(ra, dec, areas):
        assert brick_at(r, d).area_deg2 == pytest.approx(float(a), rel=1e-6)  # desiutil stores float32


@pytest.mark.slow
def test_brick_by_name_matches_full_table_sample():
    """Look-up by name against desiutil's full brick table (random 1500 bricks, all poles included)."""
    tab = Bricks(0.25).to_table()
    rng = np.random.default_rng(11)
    idx = np.concatenate([[0, 1, 2, len(tab) - 1, len(tab) - 2], rng.integers(0, len(tab), 1500)])
    for i in idx:
        row = tab[int(i)]
        b = brick_by_name(str(row["BRICKNAME"]))
        assert b.brickid == row["BRICKID"]
        assert b.brickrow == row["BRICKROW"] and b.brickcol == row["BRICKCOL"]
        assert b.ra == row["RA"] and b.dec == row["DEC"]
        assert b.brickq == row["BRICKQ"]


def test_unknown_and_invalid_names():
    with pytest.raises(KeyError, match="9999p001"):
        brick_by_name("9999p001")
    for bad in ("959p805", "0959x805", "0959p80", "../../etc", 959, None, "0959p8055"):
        with pytest.raises(ValueError, match="invalid brick name"):
            validate_brickname(bad)
    assert validate_brickname("3572m307") == "3572m307"


def test_bricknames_vectorised_and_contains():
    rng = np.random.default_rng(5)
    ra = rng.uniform(0, 360, 200)
    dec = rng.uniform(-60, 80, 200)
    names = bricknames_at(ra, dec)
    assert names.shape == (200,)
    for r, d, n in zip(ra[:40], dec[:40], names[:40]):
        b = brick_by_name(str(n))
        assert b.contains(r, d)
        assert b.brickname == brick_at(r, d).brickname
    with pytest.raises(ValueError, match="dec outside"):
        bricknames_at(np.array([1.0]), np.array([91.0]))


def test_dr6_header_wcs_equals_brick_rule(shared_data):
    """WCS of the real DR6 coadd header vs the brick rule: corners and centre agree to 1e-9 deg."""
    f = shared_data / "legacysurvey/dr6-brick-0959p805/coadd/095/0959p805/legacysurvey-0959p805-image-g.fits.fz"
    real = WCS(fits.getheader(f, 1))
    rule = brick_wcs("0959p805")
    assert rule.pixel_shape == (3600, 3600)
    px = np.array([[0, 0], [3599, 0], [0, 3599], [3599, 3599], [1799.5, 1799.5], [-0.5, -0.5], [3599.5, 3599.5]])
    a = real.all_pix2world(px, 0)
    b = rule.all_pix2world(px, 0)
    assert np.max(np.abs(a - b)) < 1e-9
    # centre pixel (0-based 1799.5) is the brick centre, Dec row grows north, column grows toward lower RA
    assert b[4] == pytest.approx([brick_by_name("0959p805").ra, 80.5], abs=1e-12)
    east = rule.all_pix2world([[1800, 1799.5]], 0)[0]
    north = rule.all_pix2world([[1799.5, 1800]], 0)[0]
    assert east[0] < b[4][0] and north[1] > b[4][1]


def test_brick_wcs_pixel_scale():
    w = brick_wcs("3572m307", size=480)
    assert w.wcs.crpix[0] == pytest.approx(240.5)
    from astropy.wcs.utils import proj_plane_pixel_scales

    assert np.allclose(proj_plane_pixel_scales(w) * 3600, 0.262, rtol=1e-12)
    with pytest.raises(ValueError, match="size"):
        bricks.brick_header("3572m307", size=0)
