"""Null injections (lens_model "NULL", source flux 0) take the whole injection path of stage 4c."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dhs.injection.task import inject_task
from dhs.io.stamps import decode
from tests.injection.tiny_sky import make_row


def _null_row(wcs, **kw):
    return make_row(wcs, lens_model="NULL", src_mag_r=math.inf, src_dmag=math.inf, **kw)


def test_null_injection_stamp_is_the_cutout_and_metrics_are_zero(brick, store, settings):
    row = _null_row(brick[1])
    cut = store.cutout(row["ra"], row["dec"], size=64, brickname=row["brickname"])
    out = inject_task(row, cut, None, settings)
    assert out["cutout_ok"] == 1 and out["error"] is None
    assert out["lens_model"] == "NULL" and out["is_control"] == 0
    assert out["theta_e_arcsec"] == pytest.approx(1.2)              # θE kept (drawn as for an injection)
    # the rendered arc is zero everywhere and the stamp is the cutout, bit for bit (as for a control)
    assert not decode(out["arc"], size=64).any()
    assert np.array_equal(decode(out["stamp"], size=64), np.asarray(cut.image, dtype=np.float32))
    for b in "grz":
        assert out[f"src_flux_{b}"] == 0.0 and out[f"total_injected_flux_{b}"] == 0.0
    assert out["arc_snr"] == 0.0 and out["arc_snr_opt"] == 0.0
    assert out["src_mag_r_used"] is None
    # lensing quantities and the PSF record are those of the injection it stands in for
    assert out["magnification"] > 1.0 and math.isfinite(out["magnification"])
    assert out["psf_source_r"] == 0 and out["psf_fwhm_used_r"] > 0


def test_null_injection_ignores_brightness_target(brick, store, settings):
    """A null row never gets a target in the manifest; with one anyway the flux stays zero (no rescale)."""
    row = _null_row(brick[1], target_arc_snr_sum=10.0)
    cut = store.cutout(row["ra"], row["dec"], size=64, brickname=row["brickname"])
    out = inject_task(row, cut, None, settings)
    assert out["cutout_ok"] == 1 and out["total_injected_flux_r"] == 0.0


def test_null_injection_has_zero_flux_whatever_its_magnitudes(brick, store, settings):
    row = make_row(brick[1], lens_model="NULL", src_mag_r=20.0, src_mag_g=20.5, src_mag_z=19.5)
    cut = store.cutout(row["ra"], row["dec"], size=64, brickname=row["brickname"])
    out = inject_task(row, cut, None, settings)
    assert out["cutout_ok"] == 1 and out["total_injected_flux_r"] == 0.0 and out["src_flux_g"] == 0.0


def test_injection_twin_differs_from_null_only_by_the_arc(brick, store, settings):
    null = _null_row(brick[1])
    twin = make_row(brick[1])
    cut = store.cutout(null["ra"], null["dec"], size=64, brickname=null["brickname"])
    a, b = inject_task(null, cut, None, settings), inject_task(twin, cut, None, settings)
    diff = decode(b["stamp"], size=64).astype(np.float64) - decode(a["stamp"], size=64)
    arc = decode(b["arc"], size=64)
    assert np.all(np.abs(diff - arc) <= np.spacing(np.abs(decode(b["stamp"], size=64))))
    assert a["magnification"] == pytest.approx(b["magnification"], rel=1e-9)
