"""Stage 4c in local Spark on the synthetic sky: outputs, physics on the output, faults, determinism."""

from __future__ import annotations

import json
import os
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pytest
from astropy.io import fits

from dhs.io.stamps import decode
from dhs.stages.common import stage_output_dir
from dhs.survey.coadd import CoaddStore
from dhs.survey.layout import coadd_path

pytestmark = pytest.mark.spark


def _read(path: str, columns=None) -> pa.Table:
    return pads.dataset(path, format="parquet", partitioning="hive").to_table(columns=columns)


def _stage_config(path: str) -> dict:
    return json.loads(Path(path, "_stage_config.json").read_text())


# ----------------------------------------------------------------------------------------- end to end
def test_end_to_end_outputs(stage4c_result, debug_config):
    r = stage4c_result
    manifest = _read(stage_output_dir(debug_config, "4a", "manifests"))
    stamps_dir = stage_output_dir(debug_config, "4c", "stamps")
    metrics_dir = stage_output_dir(debug_config, "4c", "metrics")
    assert r.rows_in == manifest.num_rows == r.rows_out
    stamps, metrics = _read(stamps_dir), _read(metrics_dir)
    assert stamps.num_rows == metrics.num_rows == manifest.num_rows
    assert sorted(stamps.column("task_id").to_pylist()) == sorted(manifest.column("task_id").to_pylist())
    assert "stamp" in stamps.column_names and "arc" in stamps.column_names
    assert not {"stamp", "arc", "invvar"} & set(metrics.column_names)
    assert sorted(f for f in os.listdir(stamps_dir) if f.startswith("region_split="))
    ok = stamps.filter(pc.equal(stamps.column("cutout_ok"), 1))
    assert ok.num_rows >= 0.8 * stamps.num_rows
    for blob, size in zip(ok.column("stamp").to_pylist()[:20], ok.column("stamp_size").to_pylist()[:20]):
        a = decode(blob, size=size)
        assert a.shape == (3, 64, 64) and a.dtype == np.float32
    for d in (stamps_dir, metrics_dir):
        counts = _stage_config(d)["counts"]
        assert counts["rows_in"] == counts["rows_out"] == manifest.num_rows
        assert sum(counts["failures_by_kind"].values()) == counts["failed"]


def test_physics_on_output(stage4c_result, debug_config):
    t = _read(stage_output_dir(debug_config, "4c", "stamps")).to_pylist()
    store = CoaddStore(debug_config.survey_root)
    ok = [r for r in t if r["cutout_ok"] == 1]
    controls = [r for r in ok if r["is_control"] == 1]
    inj = [r for r in ok if r["is_control"] == 0 and r["lens_model"] != "NULL"]   # null rows: zero flux
    assert controls and inj
    for r in controls[:40]:                          # control stamps equal the raw cutouts, bit for bit
        cut = store.cutout(r["ra"], r["dec"], r["stamp_size"], r["brickname"])
        assert r["stamp"] == cut.image.astype("<f4").tobytes()
        assert r["arc_snr"] is None and r["magnification"] is None and r["theta_e_arcsec"] == 0.0
    for r in inj[:40]:                               # injected − cutout = the rendered arc
        cut = store.cutout(r["ra"], r["dec"], r["stamp_size"], r["brickname"])
        stamp = decode(r["stamp"], size=r["stamp_size"])
        diff = stamp.astype(np.float64) - cut.image
        assert np.all(np.abs(diff - decode(r["arc"], size=r["stamp_size"])) <= np.spacing(np.abs(stamp)))
    # the flux landing in the stamp per unit source flux is the total magnification (measured over the whole
    # image plane, independently of the stamp): θE ≤ 3″ arcs fit in a 64-pixel stamp but for PSF wings
    for r in inj:
        ratio = r["total_injected_flux_r"] / r["src_flux_r"] / r["magnification"]
        assert 0.99 <= ratio <= 1.0 + 1e-6, (r["task_id"], r["theta_e_arcsec"], ratio)
    assert len({round(r["theta_e_arcsec"], 4) for r in inj}) >= 2
    # total magnification >= 1 (sources inside the caustic and, for kappa >= 0 lenses, everywhere)
    inside = [r for r in inj if np.hypot(r["src_x_arcsec"], r["src_y_arcsec"]) < 0.5 * r["theta_e_arcsec"]]
    assert inside and all(r["magnification"] >= 1.0 for r in inside)
    # PSF: never a zero or NaN FWHM; the source code says where it came from
    for r in ok:
        for b in "grz":
            assert r[f"psf_fwhm_used_{b}"] > 0 and r[f"psf_source_{b}"] in (0, 1, 2)
            if r[f"psfsize_map_{b}"] is None:
                assert r[f"psf_source_{b}"] in (1, 2)


# ------------------------------------------------------------------------ faults and determinism
def _rename_brick(sky: Path, src: str, dst: str) -> None:
    """Copy brick ``src``'s coadd folder as brick ``dst`` (files renamed; pixels and WCS unchanged)."""
    s = Path(coadd_path(str(sky), src, "maskbits")).parent
    d = Path(coadd_path(str(sky), dst, "maskbits")).parent
    d.mkdir(parents=True, exist_ok=True)
    for f in s.iterdir():
        shutil.copy(f, d / f.name.replace(src, dst))


def _rewrite(path: str, fn) -> None:
    with fits.open(path) as h:
        data, hdr = h[1].data.copy(), h[1].header.copy()
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(fn(data), header=hdr)]).writeto(path, overwrite=True)


def _psf_hole(sky: Path, bricks) -> tuple[str, float, float] | None:
    """(brick, ra, dec) of a pixel ≥ 40 px from the edge where the g psfsize map is zero."""
    for b in bricks:
        with fits.open(coadd_path(str(sky), b, "psfsize", "g")) as h:
            m = h[1].data
            ys, xs = np.nonzero(m[40:-40, 40:-40] <= 0)
            if len(xs):
                from astropy.wcs import WCS

                x, y = xs[len(xs) // 2] + 40, ys[len(ys) // 2] + 40
                ra, dec = WCS(h[1].header, naxis=2).all_pix2world(float(x), float(y), 0)
                return b, float(ra), float(dec)
    return None


@pytest.fixture(scope="module")
def faulted(stage4a_result, debug_config, synth_sky, tmp_path_factory):
    """A faulted copy of the synthetic sky and a small manifest with one row per fault."""
    base = tmp_path_factory.mktemp("faults")
    sky = base / "sky"
    shutil.copytree(synth_sky.survey_root, sky)
    m = _read(stage_output_dir(debug_config, "4a", "manifests"))
    m = m.sort_by([("task_id", "ascending")])
    rows = m.to_pylist()
    counts = defaultdict(int)
    for r in rows:
        counts[r["brickname"]] += 1
    brick = max(sorted(counts), key=lambda b: counts[b])
    normal = [r for b in sorted(counts) for r in [x for x in rows if x["brickname"] == b][:10]]
    normal += [r for r in rows if r["is_control"] == 1][:6]
    seen, sample = set(), []
    for r in normal:
        if r["task_id"] not in seen:
            seen.add(r["task_id"])
            sample.append(r)
    template = next(r for r in sample if r["is_control"] == 0 and r["brickname"] == brick)
    expected = {}

    def add(kind, reason, **kw):
        r = dict(template, task_id=f"fault-{kind}", **kw)
        sample.append(r)
        expected[r["task_id"]] = reason

    faults = {"delband": "9990p000", "trunc": "9991p000", "nan": "9992p000", "zero": "9993p000"}
    for name in faults.values():
        _rename_brick(sky, brick, name)
    Path(coadd_path(str(sky), faults["delband"], "image", "g")).unlink()
    p = Path(coadd_path(str(sky), faults["trunc"], "invvar", "r"))
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 3])
    def nan_rows(d):
        d = d.astype(np.float32)
        d[::2] = np.nan                 # NaN in every stamp, yet data left (else it reads as no_data)
        return d

    _rewrite(coadd_path(str(sky), faults["nan"], "image", "z"), nan_rows)
    _rewrite(coadd_path(str(sky), faults["zero"], "invvar", "g"), lambda d: np.zeros(d.shape, np.float32))
    add("missing", "brick_missing", brickname="9994p000")
    add("delband", "band_missing:g", brickname=faults["delband"])
    add("trunc", "read_error", brickname=faults["trunc"])
    add("nan", "nan_pixels:z", brickname=faults["nan"])
    add("zero", "no_data:g", brickname=faults["zero"])
    with fits.open(coadd_path(str(sky), brick, "image", "r")) as h:
        from astropy.wcs import WCS

        ra, dec = WCS(h[1].header, naxis=2).all_pix2world(3.0, h[1].data.shape[0] / 2, 0)
    add("edge", "off_image", ra=float(ra), dec=float(dec))
    hole = _psf_hole(sky, sorted(counts))
    assert hole is not None, "the synthetic sky should have a g psfsize hole"
    hole_row = dict(template, task_id="hole", brickname=hole[0], ra=hole[1], dec=hole[2])
    sample.append(hole_row)
    table = pa.Table.from_pylist(sample, schema=m.schema)
    mdir = base / "manifest"
    pads.write_dataset(table, mdir, format="parquet", partitioning=["region_split"], partitioning_flavor="hive")
    return sky, str(mdir), expected, len(sample)


def _run_4c(spark, debug_config, sky, manifest, out, partitions, force=True, batch_rows=7):
    from dhs.stages import stage4c

    s = debug_config.stage4c.model_copy(update={"manifest_path": manifest, "partitions": partitions,
                                                 "arrow_batch_rows": batch_rows})
    cfg = debug_config.model_copy(update={"survey_root": str(sky), "output_root": str(out), "stage4c": s,
                                          "force": force})
    return stage4c.run(spark, cfg), cfg


@pytest.mark.slow
def test_faults_and_determinism(spark, debug_config, faulted, tmp_path):
    sky, manifest, expected, n = faulted
    r2, cfg2 = _run_4c(spark, debug_config, sky, manifest, tmp_path / "p2", 2)
    # (other partitions and other Arrow batches: the arcs of a batch are rendered together)
    r7, cfg7 = _run_4c(spark, debug_config, sky, manifest, tmp_path / "p7", 7, batch_rows=3)
    assert r2.rows_in == r2.rows_out == n == r7.rows_out
    a = {r["task_id"]: r for r in _read(stage_output_dir(cfg2, "4c", "stamps")).to_pylist()}
    b = {r["task_id"]: r for r in _read(stage_output_dir(cfg7, "4c", "stamps")).to_pylist()}
    assert len(a) == len(b) == n
    for tid, row in a.items():                         # byte-identical stamps, identical metrics
        other = b[tid]
        for k, v in row.items():
            if isinstance(v, float) and np.isnan(v):
                assert np.isnan(other[k]), (tid, k)
            else:
                assert other[k] == v, (tid, k)
    for tid, reason in expected.items():
        assert a[tid]["cutout_ok"] == 0 and a[tid]["error"].startswith(reason), (tid, a[tid]["error"])
        assert a[tid]["stamp"] is None
    normal = [r for t, r in a.items() if t not in expected]
    assert sum(r["cutout_ok"] for r in normal) >= 0.8 * len(normal)
    hole = a["hole"]
    assert hole["cutout_ok"] == 1 and hole["psfsize_map_g"] is None
    assert hole["psf_source_g"] in (1, 2) and hole["psf_fwhm_used_g"] > 0
    counts = _stage_config(stage_output_dir(cfg2, "4c", "metrics"))["counts"]
    by_kind = defaultdict(int)
    for r in a.values():
        if r["error"]:
            by_kind[r["error"].split(":", 1)[0]] += 1
    assert counts["failures_by_kind"] == dict(by_kind)
    assert counts["rows_in"] == counts["rows_out"] == n
    assert r2.failures == dict(by_kind)


def test_empty_manifest(spark, debug_config, stage4a_result, tmp_path):
    m = _read(stage_output_dir(debug_config, "4a", "manifests"))
    mdir = tmp_path / "empty_manifest"
    pq_dir = mdir / "region_split=train"
    pq_dir.mkdir(parents=True)
    import pyarrow.parquet as pq

    pq.write_table(m.drop(["region_split"]).slice(0, 0), pq_dir / "part-0.parquet")
    r, cfg = _run_4c(spark, debug_config, debug_config.survey_root, str(mdir), tmp_path / "out", 2)
    assert r.rows_in == r.rows_out == 0 and r.failures == {}
    assert _stage_config(stage_output_dir(cfg, "4c", "metrics"))["counts"]["rows_out"] == 0
    again, _ = _run_4c(spark, debug_config, debug_config.survey_root, str(mdir), tmp_path / "out", 2, force=False)
    assert again.skipped
