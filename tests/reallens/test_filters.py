"""Paper IV negative-pool filters at their boundaries; NaN magnitudes fail; counts add up."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from dhs.config.stage6 import NegativeFilters
from dhs.reallens.filters import FILTER_ORDER, apply_filters, filter_failures
from tests.reallens.sweep_factory import default_columns

NO_LENS = (np.zeros(0), np.zeros(0))


def _fails(cols, filters=None, lenses=NO_LENS):
    return filter_failures(cols, filters or NegativeFilters(), *lenses)


def _zflux(mag):
    return 10.0 ** (-0.4 * (np.asarray(mag, dtype=np.float64) - 22.5))


def test_defaults_pass():
    cols = default_columns(4)
    keep, failed, _first = apply_filters(cols, NegativeFilters(), *NO_LENS)
    assert keep.all() and sum(failed.values()) == 0


def test_footprint_strict_bounds():
    dec = np.array([-18.0, np.nextafter(-18.0, 0), 0.0, np.nextafter(32.0, 0), 32.0, -30.0, 40.0])
    cols = default_columns(dec.size)
    cols["dec"] = dec
    assert _fails(cols)["footprint"].tolist() == [True, False, False, False, True, True, True]
    f = NegativeFilters.model_validate({"footprint": {"dec_min_deg": -40, "dec_max_deg": 50}})
    assert not _fails(cols, f)["footprint"].any()
    assert not _fails(cols, NegativeFilters.model_validate({"footprint": {"enabled": False}}))["footprint"].any()


def test_type_filter_and_exp_option():
    cols = default_columns(7)
    cols["type"] = np.array(["SER", "DEV", "REX", "EXP", "PSF", "DUP", "rex "])
    assert _fails(cols)["type"].tolist() == [False, False, False, True, True, True, False]
    f = NegativeFilters.model_validate({"type": {"allowed": ["SER", "DEV", "REX", "EXP"]}})
    assert _fails(cols, f)["type"].tolist() == [False, False, False, False, True, True, False]


@pytest.mark.parametrize("band", ["g", "r", "z"])
def test_nobs_each_band(band):
    cols = default_columns(4)
    cols[f"nobs_{band}"] = np.array([0, 2, 3, 11])
    assert _fails(cols)["nobs"].tolist() == [True, True, False, False]


def test_mag_z_strict_and_nan_fails():
    mags = np.array([19.99, 20.0 - 1e-9, 20.0, 20.01])
    cols = default_columns(7)
    flux = np.concatenate([_zflux(mags), [0.0, -1.0, np.nan]])
    cols["flux_z"] = flux
    got = _fails(cols)["mag"].tolist()
    # mag exactly 20 (to rounding) is not < 20
    m20 = 22.5 - 2.5 * np.log10(_zflux(20.0))
    assert got[:2] == [False, False] and got[2] == (not m20 < 20.0) and got[3] is True
    assert got[4:] == [True, True, True]   # flux ≤ 0 or NaN → NaN magnitude → fails
    f = NegativeFilters.model_validate({"mag": {"max": 21.0}})
    assert _fails(cols, f)["mag"].tolist()[:4] == [False] * 4


def test_maskbits_each_bit():
    bits = list(range(17))
    cols = default_columns(len(bits))
    cols["maskbits"] = np.array([1 << b for b in bits], dtype=np.int32)
    bad = {1, 5, 6, 7, 11, 12, 13}
    assert _fails(cols)["maskbits"].tolist() == [b in bad for b in bits]
    f = NegativeFilters.model_validate({"maskbits": {"bits": ["BRIGHT", "WISEM1"]}})
    assert _fails(cols, f)["maskbits"].tolist() == [b in {1, 8} for b in bits]


def test_known_lens_radius():
    lens = SkyCoord(150.0 * u.deg, 2.0 * u.deg)
    seps = [10.99, 11.0 - 1e-6, 11.0 + 1e-6, 11.01, 30.0]
    pts = [lens.directional_offset_by(37 * u.deg, s * u.arcsec) for s in seps]
    cols = default_columns(len(seps))
    cols["ra"] = np.array([p.ra.deg for p in pts])
    cols["dec"] = np.array([p.dec.deg for p in pts])
    got = _fails(cols, lenses=(np.array([150.0]), np.array([2.0])))["known_lens"].tolist()
    assert got == [True, True, False, False, False]
    f = NegativeFilters.model_validate({"known_lens": {"radius_arcsec": 20.0}})
    assert _fails(cols, f, (np.array([150.0]), np.array([2.0])))["known_lens"].tolist() == [True] * 4 + [False]


def test_counts_add_up():
    cols = default_columns(6)
    cols["type"][0] = "PSF"                    # type only
    cols["type"][1] = "PSF"; cols["nobs_z"][1] = 1   # type first, nobs too
    cols["flux_z"][2] = np.nan                 # mag
    cols["maskbits"][3] = 1 << 12              # maskbits
    cols["dec"][4] = 40.0; cols["maskbits"][4] = 2  # footprint first
    keep, failed, first = apply_filters(cols, NegativeFilters(), *NO_LENS)
    assert keep.tolist() == [False, False, False, False, False, True]
    assert first == {"footprint": 1, "type": 2, "nobs": 0, "mag": 1, "maskbits": 1, "known_lens": 0}
    assert failed == {"footprint": 1, "type": 2, "nobs": 1, "mag": 1, "maskbits": 2, "known_lens": 0}
    assert sum(first.values()) + int(keep.sum()) == 6
    assert list(first) == list(FILTER_ORDER)
