"""inject_task on cutouts of a tiny coadd brick: physics checks, controls, targeting, failures, schema."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from dhs.core import SersicSource, SIELens, render_lensed_bands
from dhs.injection import task as task_mod
from dhs.injection.schema import output_schema
from dhs.injection.task import inject_task
from dhs.io.stamps import decode, decode_mask
from dhs.survey.photometry import mag_to_flux, psfsize_to_moffat_fwhm
from tests.injection import tiny_sky
from tests.injection.tiny_sky import MANIFEST_SCHEMA, make_row

ARC_METRICS = ("arc_snr", "arc_snr_sum", "arc_snr_sum_footprint", "arc_snr_opt", "magnification", "total_injected_flux_g",
               "total_injected_flux_r", "total_injected_flux_z", "lensed_hlr_arcsec")


def _run(store, row, settings, bank=None):
    cut = store.cutout(row["ra"], row["dec"], size=row["stamp_size"], brickname=row["brickname"])
    return cut, inject_task(row, cut, bank, settings)


def _as_table(rows, settings):
    schema = output_schema(MANIFEST_SCHEMA, settings.keep_arrays, settings.stamp_npz)
    return pa.Table.from_pylist(rows, schema=schema), schema


def test_injected_minus_cutout_is_the_rendered_arc(brick, store, settings):
    row = make_row(brick[1])
    cut, out = _run(store, row, settings)
    assert out["cutout_ok"] == 1 and out["error"] is None
    stamp, arc = decode(out["stamp"], size=64), decode(out["arc"], size=64)
    assert stamp.shape == (3, 64, 64) and stamp.dtype == np.float32
    # independent render with the same lens, source, fluxes, PSF and sub-pixel host position
    fluxes = mag_to_flux(np.array([21.0 + 1.15, 21.0, 21.0 - 0.85]))
    fwhm = psfsize_to_moffat_fwhm(np.array([1.5, 1.3, 1.2]), 3.5)      # map values at the host
    ref = render_lensed_bands(SIELens(1.2, 0.1, -0.05, 0.02, -0.01),
                              SersicSource(1.0, 0.15, 1.0, 0.1, 0.0, 0.1, 0.05), fluxes, fwhm, psf_beta=3.5,
                              size=64, supersample=settings.supersample, offset_pix=cut.offset_pix)
    assert np.abs(arc - ref).max() <= 1e-6 * ref.max()
    diff = stamp.astype(np.float64) - cut.image
    tol = np.spacing(np.abs(stamp)).astype(np.float64)          # one float32 rounding of host + arc
    assert np.all(np.abs(diff - arc) <= tol)
    assert out["total_injected_flux_r"] == pytest.approx(arc[1].astype(np.float64).sum(), rel=1e-5)
    assert out["psf_source_g"] == out["psf_source_r"] == out["psf_source_z"] == 0
    assert out["psf_fwhm_used_r"] == pytest.approx(fwhm[1]) and out["psfsize_used_r"] == pytest.approx(1.3)
    assert np.array_equal(decode(out["invvar"], size=64), cut.invvar)
    assert np.array_equal(decode_mask(out["maskbits"], 64), cut.maskbits)


def test_arc_snr_metrics_match_design_definitions(brick, store, settings):
    row = make_row(brick[1])
    cut, out = _run(store, row, settings)
    arc = decode(out["arc"], size=64)[1].astype(np.float64)
    iv = cut.invvar[1].astype(np.float64)
    good = (iv > 0) & ((cut.maskbits & task_mod._bad_mask(settings)) == 0)
    foot = good & (arc >= 0.1 * arc.max())
    snr_foot = arc[foot].sum() / np.sqrt((1.0 / iv[foot]).sum())
    assert out["arc_snr_sum_footprint"] == pytest.approx(snr_foot, rel=1e-4)
    # the seed's integrated SNR: every good pixel of the stamp, whether or not it holds arc flux
    assert out["arc_snr_sum"] == pytest.approx(arc[good].sum() / np.sqrt((1.0 / iv[good]).sum()), rel=1e-4)
    assert out["arc_snr_sum"] < out["arc_snr_sum_footprint"]
    assert out["arc_snr_opt"] == pytest.approx(np.sqrt((arc[good] ** 2 * iv[good]).sum()), rel=1e-4)
    assert out["arc_snr"] == pytest.approx((arc[good] * np.sqrt(iv[good])).max(), rel=1e-4)


def test_mean_injected_flux_rises_with_theta_e(brick, store, settings):
    rng = np.random.default_rng(5)
    offsets = rng.uniform(-0.25, 0.25, size=(6, 2))
    means = []
    for te in (0.4, 0.8, 1.2, 1.6):
        vals = [_run(store, make_row(brick[1], theta_e_arcsec=te, src_x_arcsec=float(dx), src_y_arcsec=float(dy),
                                     src_mag_r=22.0), settings)[1]["total_injected_flux_r"] for dx, dy in offsets]
        means.append(np.mean(vals))
    assert all(b > a for a, b in itertools.pairwise(means)), means


def test_magnification_inside_caustic(brick, store, settings):
    rng = np.random.default_rng(9)
    for _ in range(8):
        te = float(rng.uniform(0.6, 2.0))
        r = float(rng.uniform(0.02, 0.2)) * te
        phi = float(rng.uniform(0, 2 * np.pi))
        row = make_row(brick[1], theta_e_arcsec=te, lens_e1=float(rng.uniform(-0.2, 0.2)),
                       lens_e2=float(rng.uniform(-0.2, 0.2)), src_x_arcsec=r * np.cos(phi),
                       src_y_arcsec=r * np.sin(phi), src_reff_arcsec=0.05)
        out = _run(store, row, settings)[1]
        assert out["magnification"] >= 1.0
    # SIS, small source at beta = 0.5 theta_E: mu = 2 theta_E / beta = 4 (not limited by the stamp)
    out = _run(store, make_row(brick[1], theta_e_arcsec=1.0, lens_e1=0.0, lens_e2=0.0, gamma1=0.0, gamma2=0.0,
                               src_x_arcsec=0.5, src_y_arcsec=0.0, src_reff_arcsec=0.02, src_e1=0.0), settings)[1]
    assert out["magnification"] == pytest.approx(4.0, rel=0.02)


def test_control_is_the_cutout_bit_for_bit(brick, store, settings):
    row = make_row(brick[1], is_control=1, lens_model="CONTROL", theta_e_arcsec=None, control_of="t9")
    cut, out = _run(store, row, settings)
    assert out["cutout_ok"] == 1
    assert out["stamp"] == cut.image.astype("<f4").tobytes()
    assert out["theta_e_arcsec"] == 0.0 and out["lens_model"] == "CONTROL"
    for k in ARC_METRICS + ("arc",):
        assert out[k] is None, k
    assert out["psf_source_r"] == 0 and out["bad_pixel_frac"] is not None


def test_zero_flux_gives_the_cutout_bit_for_bit(brick, store, settings):
    cut, out = _run(store, make_row(brick[1], src_mag_r=float("inf")), settings)
    assert out["cutout_ok"] == 1
    assert out["stamp"] == cut.image.astype("<f4").tobytes()
    assert out["total_injected_flux_r"] == 0.0


def test_add_arc_zero_keeps_bits():
    img = np.array([[-0.0, 1.5], [np.float32(1e-30), 3.0]], dtype=np.float32)
    out = task_mod.add_arc(img, np.zeros((2, 2)))
    assert out.tobytes() == img.tobytes()


def test_psfsize_hole_falls_back(brick, store, settings):
    # host inside the zero hole of the g psfsize map (rows 110-130, columns 30-50)
    cut, out = _run(store, make_row(brick[1], x=40.2, y=119.7), settings)
    assert np.isnan(cut.psfsize_at_host[0])
    assert out["psf_source_g"] == 1 and out["psfsize_used_g"] == pytest.approx(1.45)
    cut, out = _run(store, make_row(brick[1], x=40.2, y=119.7, psfsize_g=0.0), settings)
    assert out["psf_source_g"] == 2 and out["psfsize_used_g"] == pytest.approx(1.3, rel=1e-6)
    assert out["psf_fwhm_used_g"] > 0 and out["cutout_ok"] == 1


@pytest.mark.parametrize("metric", [None, "arc_snr", "arc_snr_sum", "arc_snr_sum_footprint", "arc_snr_opt"])
def test_brightness_targeting(brick, store, settings, metric):
    """The source flux is scaled so that the named metric (default: peak arc_snr) hits the target."""
    key = metric or "arc_snr"
    _, out = _run(store, make_row(brick[1], target_snr=7.5, target_snr_metric=metric, src_mag_r=None), settings)
    assert out["cutout_ok"] == 1
    assert out[key] == pytest.approx(7.5, rel=1e-9)
    m = out["src_mag_r_used"]
    assert out["src_flux_r"] == pytest.approx(mag_to_flux(m), rel=1e-9)
    assert out["src_flux_g"] / out["src_flux_r"] == pytest.approx(10 ** (-0.4 * 1.15))
    # rendering that magnitude directly reproduces the target
    _, again = _run(store, make_row(brick[1], src_mag_r=m), settings)
    assert again[key] == pytest.approx(7.5, rel=1e-6)
    assert again["stamp"] is not None


@pytest.mark.parametrize("metric", ["arc_snr", "arc_snr_sum"])
def test_targeting_by_a_named_target_column(brick, store, settings, metric):
    """A hand-made manifest may say ``target_<metric>`` instead of target_snr + target_snr_metric."""
    _, out = _run(store, dict(make_row(brick[1], src_mag_r=None), **{f"target_{metric}": 3.0}), settings)
    assert out["cutout_ok"] == 1 and out[metric] == pytest.approx(3.0, rel=1e-9)


@pytest.mark.parametrize("target,metric,reason", [(-1.0, None, "bad_manifest:target_snr"),
                                                  (float("inf"), None, "bad_manifest:target_snr"),
                                                  (5.0, "arc_snr_peak", "bad_manifest:target_snr_metric")])
def test_bad_targets_are_failure_rows(brick, store, settings, target, metric, reason):
    _, out = _run(store, make_row(brick[1], target_snr=target, target_snr_metric=metric), settings)
    assert out["cutout_ok"] == 0 and out["error"].startswith(reason) and out["clean"] == 0


def test_clean_flag_follows_bad_pixel_frac(brick, store, settings):
    row = make_row(brick[1], x=34.2, y=33.8)          # the stamp holds the 10x10 BRIGHT box
    _, out = _run(store, row, settings)
    frac = out["bad_pixel_frac"]
    assert frac == pytest.approx(100 / 64**2)
    assert out["clean"] == int(frac <= 0.2)
    strict = settings.model_copy(update={"clean_max_bad_pixel_frac": frac * 0.99})
    loose = settings.model_copy(update={"clean_max_bad_pixel_frac": frac})
    assert _run(store, row, strict)[1]["clean"] == 0
    assert _run(store, row, loose)[1]["clean"] == 1
    ctl = _run(store, dict(row, is_control=1, lens_model="CONTROL", theta_e_arcsec=None), loose)[1]
    assert ctl["clean"] == 1                      # controls carry the flag too


def test_poisson_arc_noise(brick, store, settings):
    noisy = settings.model_copy(update={"arc_noise": "poisson"})
    row = make_row(brick[1], src_mag_r=19.0)
    cut, a = _run(store, row, noisy)
    _, b = _run(store, row, noisy)
    _, clean = _run(store, row, settings)
    assert a["stamp"] == b["stamp"]                                   # deterministic from task_seed
    assert a["stamp"] != clean["stamp"] and a["arc_noise"] == "poisson"
    assert a["arc_snr_sum"] == clean["arc_snr_sum"]                   # metrics of the expected arc
    arc_n, arc_c = decode(a["arc"], size=64), decode(clean["arc"], size=64)
    diff = decode(a["stamp"], size=64).astype(np.float64) - cut.image
    assert np.all(np.abs(diff - arc_n) <= np.spacing(np.abs(decode(a["stamp"], size=64))))
    assert abs(arc_n.sum() - arc_c.sum()) < 0.05 * arc_c.sum()
    _, other = _run(store, dict(row, task_seed=42), noisy)
    assert other["stamp"] != a["stamp"]


def test_nonfinite_output_is_a_failure(brick, store, settings, monkeypatch):
    def nan_render(lenses, *a, **k):
        out = np.zeros((len(lenses), 3, 64, 64))
        out[:, 1, 3, 3] = np.nan
        # (arcs, magnifications), as render_lensed_batch(..., return_magnification=True)
        return out, np.ones(len(lenses))

    monkeypatch.setattr(task_mod, "render_lensed_batch", nan_render)
    _, out = _run(store, make_row(brick[1]), settings)
    assert out["cutout_ok"] == 0 and out["error"].startswith("nonfinite")
    assert out["stamp"] is None


@pytest.mark.parametrize("fault,reason", [
    ("host_at_edge", "off_image"),
    ("delete_brick", "brick_missing"),
    ("delete_band", "band_missing:g"),
    ("truncate", "read_error"),
    ("nan_image", "nan_pixels:r"),
    ("zero_invvar", "no_data:z"),
    ("bad_manifest", "bad_manifest"),
])
def test_faults_become_full_rows(tmp_path, settings, fault, reason):
    from astropy.io import fits

    from dhs.survey.coadd import CoaddStore
    from dhs.survey.layout import coadd_path

    root = tmp_path / "sky"
    wcs = tiny_sky.write_brick(root)
    good = make_row(wcs, task_id="ok")
    bad = make_row(wcs, task_id="bad")
    if fault == "host_at_edge":
        bad = make_row(wcs, x=3.0, y=80.0, task_id="bad")
    elif fault == "bad_manifest":
        bad["src_reff_arcsec"] = -1.0
    elif fault == "delete_brick":
        shutil.rmtree(Path(coadd_path(str(root), tiny_sky.BRICK, "image", "g")).parent)
    elif fault == "delete_band":
        Path(coadd_path(str(root), tiny_sky.BRICK, "image", "g")).unlink()
    elif fault == "truncate":
        p = Path(coadd_path(str(root), tiny_sky.BRICK, "invvar", "r"))
        p.write_bytes(p.read_bytes()[:4000])
    else:
        band, product = ("r", "image") if fault == "nan_image" else ("z", "invvar")
        p = coadd_path(str(root), tiny_sky.BRICK, product, band)
        with fits.open(p) as h:
            data, hdr = h[1].data.copy(), h[1].header.copy()
        if fault == "nan_image":
            data = data.astype(np.float32)
            data[::2] = np.nan                      # NaN rows: pixels left with data, but NaNs in every stamp
        else:
            data[:] = 0.0
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, header=hdr)]).writeto(p, overwrite=True)
    store = CoaddStore(str(root))
    rows = [_run(store, r, settings)[1] for r in (good, bad)]
    table, schema = _as_table(rows, settings)          # every column present, types valid
    assert table.num_rows == 2 and table.schema == schema
    got = table.to_pylist()
    ok_expected = 0 if fault in ("delete_brick", "delete_band", "truncate", "nan_image", "zero_invvar") else 1
    assert got[0]["cutout_ok"] == ok_expected
    assert got[1]["cutout_ok"] == 0 and got[1]["error"].startswith(reason), got[1]["error"]
    assert got[1]["stamp"] is None and got[1]["arc_snr"] is None
    assert got[1]["task_id"] == "bad" and got[1]["src_mag_r"] == 21.0          # manifest columns kept
    assert set(rows[1]) == set(schema.names)


def test_success_rows_fit_schema_and_columns(brick, store, settings):
    rows = [_run(store, make_row(brick[1], task_id=f"t{i}", theta_e_arcsec=0.5 + 0.3 * i), settings)[1]
            for i in range(3)]
    table, schema = _as_table(rows, settings)
    assert table.column("cutout_ok").to_pylist() == [1, 1, 1]
    for r in rows:
        assert set(r) == set(schema.names)
    for c in ARC_METRICS + ("bad_pixel_frac", "wise_brightmask_frac", "psf_fwhm_used_z", "src_mag_r_used"):
        assert all(v is not None and np.isfinite(v) for v in table.column(c).to_pylist()), c
    wise = rows[0]["wise_brightmask_frac"]
    cut = store.cutout(rows[0]["ra"], rows[0]["dec"], 64, tiny_sky.BRICK)
    assert wise == pytest.approx(np.mean(cut.wisemask != 0)) and wise > 0


def test_stamp_npz_matches_stamp(brick, store, settings):
    from dhs.io.stamps import decode_npz

    s = settings.model_copy(update={"stamp_npz": True})
    _, out = _run(store, make_row(brick[1]), s)
    assert np.array_equal(decode_npz(out["stamp_npz"]), decode(out["stamp"], size=64))
    table, schema = _as_table([out], s)
    assert "stamp_npz" in schema.names and table.num_rows == 1
