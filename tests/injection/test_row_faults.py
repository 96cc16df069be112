"""Per-row faults and non-fatal conditions of stage 4c name the file, band or brick (no Spark).

A coadd whose image HDU is not 2-D, a brick name that is not of the DR10 form, a missing maskbits file and
PSF fallbacks, through the cutout store, :func:`inject_task` and the stage's row loop
(:func:`dhs.stages.stage4c.process_rows`, the function ``mapInArrow`` calls).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from astropy.io import fits

from dhs.injection.schema import output_schema
from dhs.injection.task import inject_task
from dhs.stages.stage4c import process_rows, reason_kind
from dhs.survey.coadd import CoaddStore
from dhs.survey.layout import coadd_path
from tests.injection import tiny_sky
from tests.injection.tiny_sky import MANIFEST_SCHEMA, make_row


def _rows(store, rows, settings):
    out = process_rows(rows, store, None, settings)
    pa.Table.from_pylist(out, schema=output_schema(MANIFEST_SCHEMA, settings.keep_arrays, settings.stamp_npz))
    return out


def test_image_hdu_that_is_not_2d_is_a_read_error_naming_the_file(tmp_path, settings):
    root = tmp_path / "sky"
    wcs = tiny_sky.write_brick(root)
    path = coadd_path(str(root), tiny_sky.BRICK, "image", "r")
    with fits.open(path) as h:
        data, hdr = h[1].data.copy(), h[1].header.copy()
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.stack([data, data]), header=hdr)]).writeto(path, overwrite=True)
    store = CoaddStore(str(root))
    cut = store.cutout(*tiny_sky.radec(wcs, 80.0, 80.0), size=64, brickname=tiny_sky.BRICK)
    assert not cut.ok
    assert cut.reason.startswith(f"read_error:{path}: ValueError: HDU 1 holds a 3-D array of shape (2, 160, 160)")
    [out] = _rows(store, [make_row(wcs)], settings)
    assert out["cutout_ok"] == 0 and out["error"] == cut.reason
    assert reason_kind(out["error"]) == "read_error" and "image-r" in out["error"]
    assert out["stamp"] is None and out["task_id"] == "t0"


@pytest.mark.parametrize("name", ["12345", "0001x000", "", "../0001p000"])
def test_invalid_brick_name_is_its_own_error_kind(brick, store, settings, name):
    row = make_row(brick[1], brickname=name, task_id="bad")
    good = make_row(brick[1], task_id="good")
    cut = store.cutout(row["ra"], row["dec"], size=64, brickname=name)
    assert not cut.ok and cut.reason == f"bad_brickname:{name!r}"
    bad_out, good_out = _rows(store, [row, good], settings)
    assert bad_out["cutout_ok"] == 0 and reason_kind(bad_out["error"]) == "bad_brickname"
    assert bad_out["error"] == f"bad_brickname:{name!r}"
    assert good_out["cutout_ok"] == 1 and good_out["error"] is None


def test_missing_maskbits_gives_null_bad_pixel_frac_and_a_note(tmp_path, settings):
    root = tmp_path / "sky"
    wcs = tiny_sky.write_brick(root)
    Path(coadd_path(str(root), tiny_sky.BRICK, "maskbits")).unlink()
    [out] = _rows(CoaddStore(str(root)), [make_row(wcs)], settings)
    assert out["cutout_ok"] == 1 and out["error"] is None
    assert out["bad_pixel_frac"] is None                       # unknown, not 0.0
    assert out["wise_brightmask_frac"] is None
    assert out["quality_notes"] == "maskbits_missing"
    assert out["arc_snr"] is not None and out["arc_snr"] > 0   # metrics still measured on invvar > 0 pixels


def test_quality_notes_null_when_nothing_to_say(brick, store, settings):
    [out] = _rows(store, [make_row(brick[1])], settings)
    assert out["cutout_ok"] == 1 and out["quality_notes"] is None
    assert out["bad_pixel_frac"] is not None and 0.0 <= out["bad_pixel_frac"] < 1.0


def test_psf_fallbacks_are_noted(brick, store, settings):
    # host inside the zero hole of the g psfsize map: g falls back to the catalogue, then to r
    row = make_row(brick[1], x=40.2, y=119.7)
    cut = store.cutout(row["ra"], row["dec"], size=64, brickname=row["brickname"])
    out = inject_task(row, cut, None, settings)
    assert out["psf_source_g"] == 1 and out["quality_notes"] == "psf_fallback:g=catalogue"
    out = inject_task(dict(row, psfsize_g=None), cut, None, settings)
    assert out["psf_source_g"] == 2 and out["quality_notes"] == "psf_fallback:g=r_band"
    control = inject_task(dict(row, is_control=1, lens_model="CONTROL"), cut, None, settings)
    assert control["cutout_ok"] == 1 and control["quality_notes"] == "psf_fallback:g=catalogue"
