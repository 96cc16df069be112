"""Fabricated stage inputs at any row count, in the real schemas, for ``bench_scale.py``.

* :func:`write_parent` — a stage 3 ``parent/`` table (Parquet by ``region_split`` + ``_stage_config.json``) of
  hosts spread over a footprint of real DR10 bricks, with per-brick seeing and depth, a skewed number of
  hosts per brick (log-normal), non-LRG rows and rows with unusable PSF size/depth (dropped by stage 4a).
* :func:`write_metrics` — a stage 4c ``metrics/`` table with the full 4c metrics schema: injections with a
  continuous θE, controls (θE = 0, arc metrics null), failed cutouts with an error reason, NaNs and nulls.
* :func:`write_sweeps` — DR10 sweep FITS files (the full column set of :data:`dhs.synth.columns.SWEEP_SCHEMA`)
  of up to ``objects_per_file`` objects each, one 5°×5° tile per file, and the brick summary table.

Every value comes from a seeded numpy generator: the same size gives the same files. Generation is chunked,
so memory stays bounded whatever the size.
"""

from __future__ import annotations

import json
import math
import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dhs.injection.schema import metrics_schema, output_schema
from dhs.io.stage_meta import STAGE_CONFIG_NAME
from dhs.sampling.lrg import resolve_variants
from dhs.sampling.manifest import manifest_schema
from dhs.sampling.parent_task import parent_schema
from dhs.survey.bricks import bricks_at

SPLITS = np.array(["train", "val", "test"])
SPLIT_P = np.array([0.70, 0.15, 0.15])
CHUNK = 500_000
BRICK_AREA_DEG2 = 0.0625


def _done(path: str, rows: int) -> None:
    with open(os.path.join(path, STAGE_CONFIG_NAME), "w") as fh:
        json.dump({"fabricated_by": "benchmarks/scale_inputs.py", "rows": int(rows)}, fh)


def footprint_bricks(n_bricks: int, seed: int) -> dict[str, np.ndarray]:
    """``n_bricks`` distinct real bricks in a contiguous DECaLS-like patch (Dec −10…+10°), with centres and
    bounds (deg); sorted by (dec, ra) so neighbouring bricks have neighbouring indices."""
    side = math.sqrt(n_bricks * BRICK_AREA_DEG2) * 1.05
    rng = np.random.default_rng(seed)
    dec_span = min(20.0, side)
    ra_span = min(359.0, n_bricks * BRICK_AREA_DEG2 * 1.1 / dec_span)
    names: dict[str, int] = {}
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("brickname", "ra", "dec", "ra1", "ra2", "dec1", "dec2")}
    while len(names) < n_bricks:
        ra = 150.0 + rng.uniform(0, ra_span, 4 * n_bricks)
        dec = -dec_span / 2 + rng.uniform(0, dec_span, 4 * n_bricks)
        b = bricks_at(ra, dec)
        _, first = np.unique(b["brickname"], return_index=True)
        for i in first.tolist():
            nm = str(b["brickname"][i])
            if nm not in names and len(names) < n_bricks:
                names[nm] = len(names)
                for k in cols:
                    cols[k].append(b[k][i])
    out = {k: np.asarray(v) for k, v in cols.items()}
    order = np.lexsort((out["ra"], out["dec"]))
    return {k: v[order] for k, v in out.items()}


def _brick_conditions(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-brick r-band PSFSIZE (arcsec), 5σ depth (AB mag) and E(B−V) (mag), DR10-like spreads."""
    psf = 0.9 + rng.gamma(4.0, 0.1, n)
    depth5 = rng.normal(24.0, 0.35, n)
    ebv = rng.gamma(2.0, 0.02, n)
    return {"psfsize_r": psf, "depth5": depth5, "ebv": ebv}


def _ivar_of_mag5(mag5: np.ndarray) -> np.ndarray:
    """PSFDEPTH (nanomaggy⁻²) of a 5σ depth in AB mag: (5 / flux_5σ)²."""
    return (5.0 / 10 ** ((22.5 - mag5) / 2.5)) ** 2


def _hosts_per_brick(n_rows: int, n_bricks: int, rng: np.random.Generator) -> np.ndarray:
    """Skewed row counts per brick (log-normal weights, σ = 1) summing exactly to ``n_rows``."""
    w = rng.lognormal(0.0, 1.0, n_bricks)
    raw = w / w.sum() * n_rows
    cnt = np.floor(raw).astype(np.int64)
    rest = n_rows - int(cnt.sum())
    if rest:
        cnt[np.argsort(raw - cnt)[::-1][:rest]] += 1
    return cnt


class SplitWriters:
    """One zstd Parquet file per ``region_split`` (hive folders under ``root``), written chunk by chunk."""

    def __init__(self, root: str, schema: pa.Schema):
        self.root, self.schema = root, schema
        self.writers: dict[str, pq.ParquetWriter] = {}

    def write(self, table: pa.Table, split: np.ndarray) -> None:
        """Append the rows of ``table`` to the file of their split (``split``: one value per row)."""
        for s in SPLITS.tolist():
            sel = np.flatnonzero(split == s)
            if not len(sel):
                continue
            if s not in self.writers:
                d = os.path.join(self.root, f"region_split={s}")
                os.makedirs(d)
                self.writers[s] = pq.ParquetWriter(os.path.join(d, "part-00000.parquet"), self.schema,
                                                   compression="zstd")
            self.writers[s].write_table(table.take(pa.array(sel)), row_group_size=CHUNK)

    def __enter__(self) -> SplitWriters:
        return self

    def __exit__(self, *exc: object) -> None:
        for w in self.writers.values():
            w.close()


def write_parent(root: str, n_hosts: int, *, variant: str, variants: list[str], seed: int = 7,
                 non_host_frac: float = 0.03, bad_frac: float = 0.005, bricks_per_region: int = 64) -> dict:
    """A stage 3 parent table at ``root`` with ``n_hosts`` usable hosts (``is_lrg_<variant>``) plus
    ``non_host_frac`` non-host rows and ``bad_frac`` hosts with an unusable PSF size or depth."""
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    n_bricks = int(min(100_000, max(10_000, n_hosts // 100)))
    rng = np.random.default_rng(seed)
    bricks = footprint_bricks(n_bricks, seed)
    cond = _brick_conditions(n_bricks, rng)
    n_total = int(round(n_hosts * (1 + non_host_frac + bad_frac)))
    per_brick = _hosts_per_brick(n_total, n_bricks, rng)
    region = np.arange(n_bricks) // bricks_per_region
    n_regions = int(region.max()) + 1
    region_split = SPLITS[np.random.default_rng(seed + 1).choice(3, n_regions, p=SPLIT_P)]
    region_sets = np.array(["topk_density_k100" if r % 3 == 0 else "" for r in range(n_regions)], dtype=object)
    vnames = [v.name for v in resolve_variants(variants, {})]
    schema = parent_schema(resolve_variants(variants, {}))
    schema = schema.append(pa.field("region_id", pa.int64())).append(pa.field("region_split", pa.string()))
    schema = schema.append(pa.field("selection_sets", pa.list_(pa.string())))
    file_schema = pa.schema([f for f in schema if f.name != "region_split"])
    brick_of_row = np.repeat(np.arange(n_bricks), per_brick)
    objid_of_row = np.arange(n_total) - np.repeat(np.cumsum(per_brick) - per_brick, per_brick)
    with SplitWriters(root, file_schema) as out:
        for c0 in range(0, n_total, CHUNK):
            b = brick_of_row[c0:c0 + CHUNK]
            n = len(b)
            r = np.random.default_rng([seed, c0])
            name = bricks["brickname"][b]
            ra = bricks["ra1"][b] + r.uniform(0, 1, n) * (bricks["ra2"][b] - bricks["ra1"][b])
            dec = bricks["dec1"][b] + r.uniform(0, 1, n) * (bricks["dec2"][b] - bricks["dec1"][b])
            objid = objid_of_row[c0:c0 + CHUNK]
            psf_r = cond["psfsize_r"][b] * r.normal(1.0, 0.03, n)
            depth5 = cond["depth5"][b] + r.normal(0, 0.05, n)
            kind = r.uniform(0, 1, n)
            bad = kind < bad_frac
            host = kind >= bad_frac + non_host_frac
            psf_r = np.where(bad & (r.uniform(0, 1, n) < 0.5), np.nan, psf_r)
            ivar_r = np.where(bad & np.isfinite(psf_r), 0.0, _ivar_of_mag5(depth5))
            mag_z = r.uniform(17.5, 20.4, n)
            rz = r.normal(1.6, 0.25, n)
            gr = r.normal(1.7, 0.3, n)
            mag_r = mag_z + rz
            mag_g = mag_r + gr
            mag_w1 = mag_z - r.normal(0.9, 0.3, n)
            cols: dict[str, object] = {
                "galaxy_id": np.char.add(np.char.add(name.astype(str), "_"), objid.astype(str)),
                "brickname": name.astype(str), "objid": objid, "ra": ra, "dec": dec,
                "type": np.array(["DEV", "SER", "REX", "EXP"])[r.choice(4, n, p=[0.45, 0.3, 0.15, 0.1])],
                "flux_g": 10 ** ((22.5 - mag_g) / 2.5), "flux_r": 10 ** ((22.5 - mag_r) / 2.5),
                "flux_z": 10 ** ((22.5 - mag_z) / 2.5), "flux_w1": 10 ** ((22.5 - mag_w1) / 2.5),
                "nobs_g": r.integers(1, 6, n).astype(np.int32), "nobs_r": r.integers(1, 6, n).astype(np.int32),
                "nobs_z": r.integers(1, 8, n).astype(np.int32),
                "maskbits": np.where(r.uniform(0, 1, n) < 0.02, 2048, 0).astype(np.int32),
                "psfsize_g": psf_r * 1.12, "psfsize_r": psf_r, "psfsize_z": psf_r * 0.92,
                "psfdepth_g": _ivar_of_mag5(depth5 + 0.5), "psfdepth_r": ivar_r, "psfdepth_z": _ivar_of_mag5(depth5 - 0.8),
                "ebv": cond["ebv"][b], "shape_r": r.lognormal(0.2, 0.5, n), "fracmasked_g": r.uniform(0, 0.05, n),
                "mag_g": mag_g, "mag_r": mag_r, "mag_z": mag_z, "mag_w1": mag_w1,
                "psfdepth_r_mag5": depth5, "sweep_file": np.full(n, "sweep-fabricated.fits"),
                "region_id": region[b].astype(np.int64),
                "selection_sets": [[s] if s else [] for s in region_sets[region[b]].tolist()],
            }
            for v in vnames:
                cols[f"is_lrg_{v}"] = (host | bad) if v == variant else (kind > 0.5)
            table = pa.table({f.name: pa.array(cols[f.name], type=f.type) for f in file_schema}, schema=file_schema)
            out.write(table, region_split[region[b]])
    _done(root, n_total)
    return {"rows": n_total, "hosts": n_hosts, "bricks": n_bricks, "regions": n_regions}


_ERRORS = ("read_error:OSError: cannot read coadd", "off_image:cutout outside the brick",
           "no_data:all-zero invvar in r", "nan_pixels:NaN pixels in the stamp")


def write_metrics(root: str, n_rows: int, *, seed: int = 11, control_frac: float = 0.5, fail_frac: float = 0.01,
                  n_regions: int = 1500) -> dict:
    """A stage 4c metrics table of ``n_rows`` rows (controls, injections, failures, nulls) at ``root``."""
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    schema = metrics_schema(output_schema(manifest_schema(), keep_arrays=()))
    file_schema = pa.schema([f for f in schema if f.name != "region_split"])
    region_split = SPLITS[np.random.default_rng(seed + 1).choice(3, n_regions, p=SPLIT_P)]
    with SplitWriters(root, file_schema) as out:
        for c0 in range(0, n_rows, CHUNK):
            n = min(CHUNK, n_rows - c0)
            r = np.random.default_rng([seed, c0])
            idx = np.arange(c0, c0 + n)
            ctl = r.uniform(0, 1, n) < control_frac
            ok = r.uniform(0, 1, n) >= fail_frac
            region = np.minimum((r.pareto(1.5, n) * 60).astype(np.int64), n_regions - 1)
            theta = np.where(ctl, 0.0, r.uniform(0.5, 3.0, n))
            psf_r = 0.9 + r.gamma(4.0, 0.1, n)
            fwhm_r = np.where(r.uniform(0, 1, n) < 0.002, np.nan, 0.81 * psf_r)
            depth5 = r.normal(24.0, 0.35, n)
            src_mag = r.uniform(20.0, 24.5, n)
            snr = np.where(ctl | ~ok, np.nan, 10 ** r.normal(0.9, 0.5, n))
            snr = np.where(r.uniform(0, 1, n) < 0.001, np.nan, snr)
            task = np.char.add("bench/g", idx.astype(str))
            cols: dict[str, object] = {
                "task_id": task, "task_seed": r.integers(-2**62, 2**62, n), "experiment_id": np.full(n, "bench"),
                "galaxy_id": np.char.add("b_", (idx // 2).astype(str)), "brickname": np.full(n, "1501p000"),
                "ra": r.uniform(150, 160, n), "dec": r.uniform(-5, 5, n), "is_control": ctl.astype(np.int32),
                "control_of": [None] * n, "config_id": np.where(ctl, "control", "prior"),
                "lens_model": np.where(ctl, "CONTROL", "SIE"), "theta_e_arcsec": theta,
                "src_mag_r": np.where(ctl, np.nan, src_mag), "source_mode": np.where(ctl, None, "sersic"),
                "psf_bin": r.integers(0, 4, n).astype(np.int32), "depth_bin": r.integers(0, 4, n).astype(np.int32),
                "stamp_size": np.full(n, 64, np.int32), "psfsize_r": psf_r, "psfdepth_r": _ivar_of_mag5(depth5),
                "psfdepth_r_mag5": depth5, "tier": np.full(n, "train"), "replicate": np.zeros(n, np.int32),
                "target_arc_snr_sum": np.where(ctl, np.nan, r.uniform(1.0, 20.0, n)), "region_id": region,
                "cutout_ok": ok.astype(np.int32),
                "error": np.where(ok, None, np.array(_ERRORS, dtype=object)[r.integers(0, len(_ERRORS), n)]),
                "arc_snr": snr, "arc_snr_sum": snr * 3.0, "arc_snr_opt": snr * 1.5,
                "magnification": np.where(ctl, np.nan, 1 + r.gamma(2.0, 2.0, n)),
                "bad_pixel_frac": np.where(r.uniform(0, 1, n) < 0.05, r.uniform(0.2, 1, n), r.uniform(0, 0.05, n)),
                "wise_brightmask_frac": np.where(r.uniform(0, 1, n) < 0.03, r.uniform(0.2, 1, n), 0.0),
                "psf_fwhm_used_r": fwhm_r, "psf_fwhm_used_g": 1.1 * fwhm_r, "psf_fwhm_used_z": 0.9 * fwhm_r,
                "psf_source_g": np.where(r.uniform(0, 1, n) < 0.01, 2, 0).astype(np.int32),
                "psf_source_r": np.where(r.uniform(0, 1, n) < 0.01, 1, 0).astype(np.int32),
                "psf_source_z": np.zeros(n, np.int32), "src_mag_r_used": np.where(ctl, np.nan, src_mag),
            }
            arrays = []
            for f in file_schema:
                v = cols.get(f.name)
                arrays.append(pa.nulls(n, f.type) if v is None else pa.array(v, type=f.type, from_pandas=True))
            table = pa.Table.from_arrays(arrays, schema=file_schema)
            out.write(table, region_split[region])
    _done(root, n_rows)
    return {"rows": n_rows, "regions": n_regions}


def _tile_name(ra0: float, dec0: float) -> str:
    def part(ra: float, dec: float) -> str:
        return f"{int(ra):03d}{'p' if dec >= 0 else 'm'}{int(abs(dec)):03d}"
    return f"sweep-{part(ra0, dec0)}-{part(ra0 + 5, dec0 + 5)}.fits"


def write_sweeps(survey_root: str, n_objects: int, *, objects_per_file: int = 1_000_000, seed: int = 3) -> dict:
    """DR10-layout sweeps under ``survey_root/sweep/10.1/`` holding ``n_objects`` objects in files of at most
    ``objects_per_file`` (one 5°×5° tile each) and ``survey-bricks-dr10-south.fits.gz`` for their bricks.

    Object mix per tile: 30 % PSF, 30 % REX, 20 % EXP, 12 % DEV, 8 % SER; LRG-like red DEV/SER objects
    (≈ 5 % of all) pass the LRG cuts; fluxes, depths and seeing vary per brick."""
    from dhs.synth.columns import SWEEP_SCHEMA
    from dhs.synth.writers import table_hdu, write_fits_gz, write_sweep

    shutil.rmtree(survey_root, ignore_errors=True)
    sweep_dir = os.path.join(survey_root, "sweep", "10.1")
    os.makedirs(sweep_dir)
    n_files = max(1, math.ceil(n_objects / objects_per_file))
    summary: dict[str, list] = {k: [] for k in ("BRICKNAME", "RA", "DEC", "EBV", "PSFSIZE_R", "PSFDEPTH_R")}
    seen: set[str] = set()
    for f in range(n_files):
        n = min(objects_per_file, n_objects - f * objects_per_file)
        ra0, dec0 = 150.0 + 5.0 * (f % 20), -5.0 + 5.0 * (f // 20)
        r = np.random.default_rng([seed, f])
        ra = ra0 + r.uniform(0, 5, n)
        dec = np.degrees(np.arcsin(r.uniform(np.sin(np.radians(dec0)), np.sin(np.radians(dec0 + 5)), n)))
        b = bricks_at(ra, dec)
        uniq, inv = np.unique(b["brickname"], return_inverse=True)
        cond = _brick_conditions(len(uniq), np.random.default_rng([seed, f, 1]))
        first = np.unique(inv, return_index=True)[1]
        for j, nm in enumerate(uniq.tolist()):
            if nm not in seen:
                seen.add(nm)
                i = first[j]
                summary["BRICKNAME"].append(nm)
                summary["RA"].append(b["ra"][i])
                summary["DEC"].append(b["dec"][i])
                summary["EBV"].append(cond["ebv"][j])
                summary["PSFSIZE_R"].append(cond["psfsize_r"][j])
                summary["PSFDEPTH_R"].append(cond["depth5"][j])
        order = np.lexsort((ra, inv))
        ra, dec, inv = ra[order], dec[order], inv[order]
        names = uniq[inv]
        objid = np.arange(n) - np.searchsorted(inv, inv)
        types = np.array(["PSF", "REX", "EXP", "DEV", "SER"])[r.choice(5, n, p=[0.3, 0.3, 0.2, 0.12, 0.08])]
        red = np.isin(types, ["DEV", "SER"]) & (r.uniform(0, 1, n) < 0.25)
        mag_z = np.where(red, r.uniform(18.0, 20.4, n), r.uniform(19.0, 23.5, n))
        rz = np.where(red, r.normal(1.55, 0.2, n), r.normal(0.6, 0.4, n))
        gr = np.where(red, r.normal(1.7, 0.25, n), r.normal(0.6, 0.3, n))
        zw1 = np.where(red, r.normal(1.8, 0.3, n), r.normal(0.3, 0.5, n))
        psf_r = cond["psfsize_r"][inv] * r.normal(1.0, 0.03, n)
        depth5 = cond["depth5"][inv] + r.normal(0, 0.05, n)
        mags = {"G": mag_z + rz + gr, "R": mag_z + rz, "I": mag_z + 0.5 * rz, "Z": mag_z, "W1": mag_z - zw1,
                "W2": mag_z - zw1 + 0.5, "W3": mag_z - zw1 + 2.0, "W4": mag_z - zw1 + 3.0}
        cols: dict[str, np.ndarray] = {}
        for name, fmt in SWEEP_SCHEMA:
            shape = (n, int(fmt[:-1])) if fmt[:-1].isdigit() and not fmt.endswith("A") else (n,)
            cols[name] = np.zeros(shape, dtype=np.float32) if not fmt.endswith("A") else np.full(n, "")
        cols.update({
            "RELEASE": np.full(n, 10000, np.int16), "BRICKID": b["brickid"][order].astype(np.int32),
            "BRICKNAME": names, "OBJID": objid.astype(np.int32), "BRICK_PRIMARY": np.ones(n, bool),
            "MASKBITS": np.where(r.uniform(0, 1, n) < 0.03, 2, 0).astype(np.int32), "TYPE": types,
            "RA": ra, "DEC": dec, "EBV": cond["ebv"][inv].astype(np.float32),
            "SHAPE_R": np.where(types == "PSF", 0.0, r.lognormal(0.0, 0.6, n)).astype(np.float32),
            "SHAPE_E1": r.normal(0, 0.15, n).astype(np.float32), "SHAPE_E2": r.normal(0, 0.15, n).astype(np.float32),
            "SERSIC": np.select([types == "DEV", types == "SER"], [4.0, r.uniform(1, 6, n)], 1.0).astype(np.float32),
        })
        for band, m in mags.items():
            cols[f"FLUX_{band}"] = (10 ** ((22.5 - m) / 2.5) * r.normal(1.0, 0.02, n)).astype(np.float32)
            cols[f"FLUX_IVAR_{band}"] = np.full(n, 400.0, np.float32)
            cols[f"MW_TRANSMISSION_{band}"] = np.full(n, 0.95, np.float32)
            cols[f"NOBS_{band}"] = r.integers(1, 8, n).astype(np.int16)
        for band, scale, dd in (("G", 1.12, 0.5), ("R", 1.0, 0.0), ("I", 0.96, -0.4), ("Z", 0.92, -0.8)):
            cols[f"PSFSIZE_{band}"] = (psf_r * scale).astype(np.float32)
            cols[f"PSFDEPTH_{band}"] = _ivar_of_mag5(depth5 + dd).astype(np.float32)
            cols[f"GALDEPTH_{band}"] = (0.6 * _ivar_of_mag5(depth5 + dd)).astype(np.float32)
            cols[f"FIBERFLUX_{band}"] = (0.3 * cols[f"FLUX_{band}"]).astype(np.float32)
            cols[f"FIBERTOTFLUX_{band}"] = (0.3 * cols[f"FLUX_{band}"]).astype(np.float32)
        write_sweep(os.path.join(sweep_dir, _tile_name(ra0, dec0)), cols)
        del cols
    s = {k: np.asarray(v) for k, v in summary.items()}
    s["PSFDEPTH_R"] = np.asarray(s["PSFDEPTH_R"], dtype=np.float64)
    hdu = table_hdu(s, [("BRICKNAME", "8A"), ("RA", "D"), ("DEC", "D"), ("EBV", "E"), ("PSFSIZE_R", "E"),
                        ("PSFDEPTH_R", "E")], {})
    write_fits_gz(os.path.join(survey_root, "survey-bricks-dr10-south.fits.gz"), hdu)
    return {"rows": n_objects, "files": n_files, "bricks": len(seen)}
