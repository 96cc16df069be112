"""The DR10 brick summary table (survey-bricks-dr10-south.fits.gz or a Parquet/CSV copy): per-brick
extinction, PSF size and depth, and the brick bounds (deg), as stage 3 uses them."""

from __future__ import annotations

import io

import numpy as np

from dhs.io.paths import S3Options, read_bytes
from dhs.survey.photometry import psfdepth_ivar_to_mag5


def read_table_columns(path: str, data: bytes) -> dict[str, np.ndarray]:
    """The 1-d columns of a table file's bytes (Parquet, CSV, or the first binary-table HDU of a FITS or
    gzipped FITS file) by lower-case name; FITS strings decoded and stripped, native byte order."""
    lower = path.lower()
    if lower.endswith(".parquet"):
        import pyarrow.parquet as pq

        t = pq.read_table(io.BytesIO(data))
        return {c.lower(): t[c].to_numpy(zero_copy_only=False) for c in t.column_names}
    if lower.endswith(".csv"):
        import pyarrow.csv as pcsv

        t = pcsv.read_csv(io.BytesIO(data))
        return {c.lower(): t[c].to_numpy(zero_copy_only=False) for c in t.column_names}
    from astropy.io import fits

    if data[:2] == b"\x1f\x8b":
        import gzip

        data = gzip.decompress(data)
    with fits.open(io.BytesIO(data)) as hdul:
        hdu = next((h for h in hdul if isinstance(h, fits.BinTableHDU)), None)
        if hdu is None:
            raise ValueError(f"brick summary {path}: no binary table HDU")
        out = {}
        for name in hdu.columns.names:
            col = np.asarray(hdu.data[name])
            if col.ndim != 1:
                continue
            if col.dtype.kind == "S":
                col = np.char.strip(np.char.decode(col, "ascii"))
            elif col.dtype.byteorder not in ("=", "|"):
                col = col.astype(col.dtype.newbyteorder("="))
            out[name.lower()] = col
        return out


def load_brick_summary(path: str, unit: str, s3: S3Options | None = None) -> dict[str, np.ndarray]:
    """Per-brick table: ``brickname``, ``ebv`` (mag), ``psfsize_r`` (arcsec), ``psfdepth_r_mag5`` (5σ AB
    mag; from ``psfdepth_r`` in ``unit`` "mag5" or "ivar" nanomaggy⁻²) and, when present, ``ra1, ra2,
    dec1, dec2`` (deg). FITS (.fits/.fits.gz), Parquet or CSV. Errors name the file and column."""
    try:
        data = read_bytes(path, s3)
    except (OSError, Exception) as exc:
        raise FileNotFoundError(f"stage 3: cannot read brick summary {path} (stage3.brick_summary): {exc}") from exc
    cols = read_table_columns(path, data)
    for need in ("brickname", "ebv", "psfsize_r", "psfdepth_r"):
        if need not in cols:
            raise KeyError(f"brick summary {path}: column {need!r} missing (have {sorted(cols)[:30]})")
    depth = np.asarray(cols["psfdepth_r"], dtype=np.float64)
    out = {
        "brickname": np.asarray(cols["brickname"]).astype(str),
        "ebv": np.asarray(cols["ebv"], dtype=np.float64),
        "psfsize_r": np.asarray(cols["psfsize_r"], dtype=np.float64),
        "psfdepth_r_mag5": depth if unit == "mag5" else psfdepth_ivar_to_mag5(depth),
    }
    if all(k in cols for k in ("ra1", "ra2", "dec1", "dec2")):
        for k in ("ra1", "ra2", "dec1", "dec2"):
            out[k] = np.asarray(cols[k], dtype=np.float64)
    elif "ra" in cols and "dec" in cols and len(out["brickname"]):
        # bounds from the brick tiling at the listed centres (vectorised); names must agree
        from dhs.survey.bricks import bricks_at

        geo = bricks_at(np.asarray(cols["ra"], dtype=np.float64), np.asarray(cols["dec"], dtype=np.float64))
        bad = np.flatnonzero(geo["brickname"] != out["brickname"])
        if len(bad):
            raise ValueError(
                f"brick summary {path}: row {int(bad[0])} brickname {str(out['brickname'][bad[0]])!r} does not match the "
                f"brick at its ra/dec ({str(geo['brickname'][bad[0]])!r})"
            )
        for k in ("ra1", "ra2", "dec1", "dec2"):
            out[k] = geo[k]
    if len(np.unique(out["brickname"])) != len(out["brickname"]):
        raise ValueError(f"brick summary {path}: duplicate bricknames")
    return out
