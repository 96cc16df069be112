"""Derived columns: magnitudes, strata bins, HEALPix, and the hash split (deterministic across processes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy_healpix import HEALPix

from dhs.reallens.derived import derive, hash_split, healpix_index, magnitudes, nobs_z_bin, type_bin
from tests.reallens.sweep_factory import default_columns

REPO = Path(__file__).resolve().parents[2]
FR = {"train": 0.70, "val": 0.15, "test": 0.15}


def test_nobs_z_bins_boundaries():
    got = nobs_z_bin([0, 1, 2, 3, 5, 6, 10, 11, 250]).tolist()
    assert got == ["0", "1-2", "1-2", "3-5", "3-5", "6-10", "6-10", "11+", "11+"]


def test_type_bin():
    assert type_bin(["SER", "dev ", "COMP", "DUP", "REX"]).tolist() == ["SER", "DEV", "OTHER", "OTHER", "REX"]


def test_magnitudes_and_colours_nan():
    cols = {"flux_g": np.array([10.0, 0.0, -1.0]), "flux_r": np.array([1.0, 1.0, 1.0]),
            "flux_z": np.array([1.0, 1.0, np.nan])}
    m = magnitudes(cols)
    assert m["mag_g"][0] == pytest.approx(20.0, abs=1e-12) and m["mag_r"][0] == pytest.approx(22.5, abs=1e-12)
    assert m["g_minus_r"][0] == pytest.approx(-2.5, abs=1e-12)
    assert np.isnan(m["mag_g"][1:]).all() and np.isnan(m["g_minus_r"][1:]).all() and np.isnan(m["r_minus_z"][2])


def test_healpix_nested_contains_position():
    ra = np.array([0.1, 150.3, 359.9, 45.0])
    dec = np.array([-60.0, 2.0, 33.3, 89.0])
    nside = 256
    pix = healpix_index(ra, dec, nside)
    hp = HEALPix(nside=nside, order="nested")
    lon, lat = hp.healpix_to_lonlat(pix)
    ring = HEALPix(nside=nside, order="ring").lonlat_to_healpix(ra * u.deg, dec * u.deg)
    assert not np.array_equal(pix, ring)  # nested, not ring
    sep = hp.pixel_resolution.to_value(u.deg)
    d = np.degrees(np.arccos(np.clip(np.sin(np.radians(dec)) * np.sin(lat.rad)
                                     + np.cos(np.radians(dec)) * np.cos(lat.rad) * np.cos(np.radians(ra) - lon.rad), -1, 1)))
    assert np.all(d < sep)  # the pixel centre is within one pixel size of the position


def test_hash_split_fractions_and_seed():
    pix = np.arange(200_000)
    s = hash_split(pix, 1024, 7, FR)
    for k, f in FR.items():
        assert np.mean(s == k) == pytest.approx(f, abs=0.005)   # 4σ of a binomial share at n = 2e5
    assert not np.array_equal(s, hash_split(pix, 1024, 8, FR))
    rev = hash_split(pix[::-1], 1024, 7, FR)
    np.testing.assert_array_equal(rev[::-1], s)   # per-pixel, independent of order


def test_positives_and_negatives_in_a_pixel_share_a_split():
    cols = default_columns(50)
    rng = np.random.default_rng(3)
    cols["ra"] = 150 + rng.uniform(0, 0.5, 50)
    cols["dec"] = rng.uniform(0, 0.5, 50)
    d = derive(cols, 256, 1234, FR)
    for p in np.unique(d["healpix"]):
        assert len(set(d["region_split"][d["healpix"] == p].tolist())) == 1


_SNIPPET = """
import json, numpy as np
from dhs.reallens.derived import hash_split
s = hash_split(np.arange(5000), 512, 1234, {"train": 0.7, "val": 0.15, "test": 0.15})
print(json.dumps(s.tolist()))
"""


def test_split_deterministic_across_processes():
    outs = []
    for salt in ("1", "2"):   # different PYTHONHASHSEED: Python's hash() would differ, xxhash must not
        r = subprocess.run([sys.executable, "-c", _SNIPPET], capture_output=True, text=True, cwd=str(REPO),
                           env={"PYTHONHASHSEED": salt, "PATH": "/usr/bin:/bin"}, timeout=120, check=True)
        outs.append(json.loads(r.stdout))
    assert outs[0] == outs[1]
    here = hash_split(np.arange(5000), 512, 1234, FR).tolist()
    assert here == outs[0]
    assert set(here) == {"train", "val", "test"}


def test_hash_split_does_not_depend_on_the_order_of_the_fraction_keys():
    import numpy as np

    from dhs.reallens.derived import hash_split

    pix = np.arange(500, dtype=np.int64)
    a = hash_split(pix, 128, 3, {"train": 0.7, "val": 0.15, "test": 0.15})
    b = hash_split(pix, 128, 3, {"val": 0.15, "test": 0.15, "train": 0.7})
    assert list(a) == list(b)
