"""A tiny DR10-layout catalogue sky for stage-3 tests (sweep FITS files + brick summary), independent of
dhs.synth: real brick geometry from desiutil, in three sky areas including one across RA = 0/360."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from dhs.survey.bricks import bricks_at

AREAS = (((359.2, 360.0), (0.0, 0.8), (-0.6, 0.6)), ((150.0, 151.6), None, (20.0, 21.0)), ((40.0, 41.0), None, (-30.0, -29.2)))


def _bricks() -> dict[str, np.ndarray]:
    parts = []
    for ra_a, ra_b, (d0, d1) in AREAS:
        ras = np.concatenate([np.arange(*r, 0.05) for r in (ra_a, ra_b) if r is not None])
        decs = np.arange(d0, d1, 0.05)
        rr, dd = np.meshgrid(ras % 360, decs)
        parts.append(bricks_at(rr.ravel(), dd.ravel()))
    b = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    _, first = np.unique(b["brickname"], return_index=True)
    return {k: v[np.sort(first)] for k, v in b.items()}


def _flux(m):
    return (10.0 ** (-0.4 * (np.asarray(m) - 22.5))).astype(np.float32)


def build_minisky(root: Path, seed: int = 3) -> dict:
    """Write ``root/sweep/10.1/*.fits`` (two files), a corrupt third sweep, and the brick summary.
    Returns paths and the brick table."""
    rng = np.random.default_rng(seed)
    b = _bricks()
    nb = len(b["brickname"])
    rows = []
    for i in range(nb):
        n = int(rng.integers(20, 60))
        ra = (b["ra1"][i] + rng.uniform(0.001, 0.999, n) * (b["ra2"][i] - b["ra1"][i])) % 360
        dec = b["dec1"][i] + rng.uniform(0.001, 0.999, n) * (b["dec2"][i] - b["dec1"][i])
        lrg = rng.uniform(size=n) < 0.4
        z = np.where(lrg, rng.uniform(18.5, 21.3, n), rng.uniform(19, 23, n))
        rz = np.where(lrg, rng.uniform(0.35, 1.6, n), rng.uniform(-0.2, 0.6, n))
        zw = np.where(lrg, rng.uniform(0.7, 2.2, n), rng.uniform(-0.5, 1.0, n))
        gr = rng.uniform(0.2, 1.8, n)
        typ = rng.choice(np.array(["DEV", "SER", "REX", "EXP", "PSF"]), n, p=[0.3, 0.2, 0.2, 0.15, 0.15])
        fz = _flux(z)
        fz[rng.uniform(size=n) < 0.03] = -0.1  # some non-positive fluxes
        rows.append({
            "BRICKNAME": np.full(n, b["brickname"][i]).astype("S8"), "BRICKID": np.full(n, b["brickid"][i], np.int32),
            "OBJID": np.arange(n, dtype=np.int32), "TYPE": typ.astype("S3"), "RA": ra, "DEC": dec,
            "EBV": np.full(n, 0.03, np.float32), "FLUX_G": _flux(z + rz + gr), "FLUX_R": _flux(z + rz), "FLUX_Z": fz,
            "FLUX_W1": _flux(z - zw), "NOBS_G": np.full(n, 3, np.int16), "NOBS_R": np.full(n, 3, np.int16),
            "NOBS_Z": np.full(n, 3, np.int16), "FRACMASKED_G": rng.uniform(0, 0.4, n).astype(np.float32),
            "PSFSIZE_G": np.full(n, 1.4, np.float32), "PSFSIZE_R": np.full(n, 1.2, np.float32),
            "PSFSIZE_Z": np.full(n, 1.1, np.float32), "PSFDEPTH_G": np.full(n, 2000, np.float32),
            "PSFDEPTH_R": np.full(n, 1500, np.float32), "PSFDEPTH_Z": np.full(n, 300, np.float32),
            "MASKBITS": np.zeros(n, np.int16), "SHAPE_R": rng.uniform(0.3, 2, n).astype(np.float32),
            "RELEASE": np.full(n, 10000, np.int16),
        })
    cat = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
    sweep_dir = root / "sweep" / "10.1"
    sweep_dir.mkdir(parents=True)
    north = cat["DEC"] > 10
    paths = []
    for mask, name in ((~north, "sweep-355m005-000p000.fits"), (north, "sweep-150p020-155p025.fits")):
        cols = [fits.Column(name=k, array=v[mask], format=_fmt(v)) for k, v in cat.items()]
        p = sweep_dir / name
        fits.BinTableHDU.from_columns(cols).writeto(p)
        paths.append(str(p))
    bad = sweep_dir / "sweep-040m030-045m025.fits"
    bad.write_bytes(b"SIMPLE  =                    T / truncated, not a FITS file")
    # brick summary: quality varies so that some bricks fail the default cuts
    psfsize_r = rng.uniform(1.0, 1.5, nb)
    depth = rng.uniform(23.8, 24.6, nb)
    ebv = rng.uniform(0.01, 0.08, nb)
    bad_q = rng.choice(nb, size=max(2, nb // 10), replace=False)
    psfsize_r[bad_q[: len(bad_q) // 2]] = 1.9
    depth[bad_q[len(bad_q) // 2:]] = 23.0
    summ = {"BRICKNAME": b["brickname"].astype("S8"), "RA": b["ra"], "DEC": b["dec"], "EBV": ebv.astype(np.float32),
                "PSFSIZE_G": np.full(nb, 1.4, np.float32), "PSFSIZE_R": psfsize_r.astype(np.float32),
                "PSFSIZE_Z": np.full(nb, 1.1, np.float32), "PSFDEPTH_G": np.full(nb, 24.5, np.float32),
                "PSFDEPTH_R": depth.astype(np.float32), "PSFDEPTH_Z": np.full(nb, 23.2, np.float32)}
    summary = root / "survey-bricks-dr10-south.fits.gz"
    fits.BinTableHDU.from_columns([fits.Column(name=k, array=v, format=_fmt(v)) for k, v in summ.items()]).writeto(summary)
    return {"root": str(root), "sweeps": paths, "bad_sweep": str(bad), "summary": str(summary), "bricks": b,
                "n_objects": len(cat["RA"])}


def _fmt(v: np.ndarray) -> str:
    k, size = v.dtype.kind, v.dtype.itemsize
    if k == "S":
        return f"{size}A"
    return {("f", 4): "E", ("f", 8): "D", ("i", 2): "I", ("i", 4): "J", ("i", 8): "K"}[(k, size)]
