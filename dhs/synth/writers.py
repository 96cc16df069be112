"""FITS writers for the synthetic sky (byte-for-byte deterministic).

- coadd images: tile-compressed (``.fits.fz``), data in HDU1 as in DR10. ``image`` uses RICE_1 with
  subtractive dithering (SUBTRACTIVE_DITHER_2, which keeps exact zeros) at quantize_level 32: the
  quantisation step is σ_pixel/32, adding 1/(12·32²) ≈ 8e-5 of the noise variance, and the dither seed is
  fixed so that the bytes are reproducible. ``invvar`` and ``psfsize`` (smooth floats) use lossless
  GZIP_2 (quantize_level 0; tiles written with a zero gzip timestamp); ``maskbits`` (integers) RICE_1,
  lossless for integers.
- tables: binary tables; the gzipped brick summary is written with a zero gzip timestamp.
"""

from __future__ import annotations

import functools
import gzip
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from astropy.io import fits

from dhs.synth.columns import SWEEP_SCHEMA, SWEEP_UNITS

IMAGE_QUANTIZE_LEVEL = 32.0
TILE_ROWS = 100  # compression tiles of 100 full rows (noise is estimated per tile for RICE)
_SUBTRACTIVE_DITHER_2 = 2


def _compressed(data: np.ndarray, header: fits.Header, kind: str, name: str, dither_seed: int
                ) -> fits.CompImageHDU:
    tiles = (min(TILE_ROWS, data.shape[0]), data.shape[1])
    if kind == "image":
        return fits.CompImageHDU(data=data, header=header, name=name, compression_type="RICE_1",
                                 quantize_level=IMAGE_QUANTIZE_LEVEL, quantize_method=_SUBTRACTIVE_DITHER_2,
                                 dither_seed=dither_seed, tile_shape=tiles)
    if kind == "float_lossless":
        return fits.CompImageHDU(data=data, header=header, name=name, compression_type="GZIP_2",
                                 quantize_level=0.0, tile_shape=tiles)
    if kind == "int":
        return fits.CompImageHDU(data=data, header=header, name=name, compression_type="RICE_1",
                                 tile_shape=tiles)
    raise ValueError(f"unknown compression kind {kind!r}")


@contextmanager
def _deterministic_gzip() -> Iterator[None]:
    """Make astropy's GZIP tile codec write a zero gzip timestamp (it calls ``gzip.compress`` whose
    default stamps the current time into every tile, so identical data would give different bytes)."""
    try:
        from astropy.io.fits.hdu.compressed import _codecs
    except ImportError:  # pragma: no cover - astropy layout changed; the determinism test will say so
        yield
        return
    original = getattr(_codecs, "gzip_compress", None)
    if original is None:  # pragma: no cover
        yield
        return
    _codecs.gzip_compress = functools.partial(gzip.compress, mtime=0)
    try:
        yield
    finally:
        _codecs.gzip_compress = original


def write_compressed(path: str, hdus: list[tuple[np.ndarray, fits.Header, str, str]],
                     dither_seed: int = 1) -> None:
    """Write ``.fits.fz``: an empty primary HDU then one compressed HDU per (data, header, kind, extname).

    ``kind`` ∈ {"image", "float_lossless", "int"}; ``dither_seed`` in 1…10000.
    """
    if not 1 <= dither_seed <= 10000:
        raise ValueError(f"dither_seed must be in 1..10000, got {dither_seed}")
    hl = fits.HDUList([fits.PrimaryHDU()])
    for data, header, kind, name in hdus:
        hl.append(_compressed(data, header, kind, name, dither_seed))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with _deterministic_gzip():
        hl.writeto(path, overwrite=True)


_NUMPY_OF_TFORM = {"E": ">f4", "D": ">f8", "I": ">i2", "J": ">i4", "K": ">i8", "B": "u1", "L": "?"}


def _dtype_of(fmt: str) -> tuple:
    if fmt.endswith("A"):
        return (f"S{int(fmt[:-1])}",)
    if fmt[:-1].isdigit():  # vector column, e.g. 5E
        return (_NUMPY_OF_TFORM[fmt[-1]], (int(fmt[:-1]),))
    return (_NUMPY_OF_TFORM[fmt],)


def table_hdu(columns: dict[str, np.ndarray], schema: list[tuple[str, str]], units: dict[str, str],
              name: str | None = None) -> fits.BinTableHDU:
    """A binary table HDU with the columns in ``schema`` order (name, FITS TFORM) and TUNITs."""
    n = len(next(iter(columns.values())))
    arr = np.zeros(n, dtype=[(cname, *_dtype_of(fmt)) for cname, fmt in schema])
    for cname, fmt in schema:
        v = columns[cname]
        arr[cname] = np.char.encode(np.asarray(v, dtype=str), "ascii") if fmt.endswith("A") else v
    hdu = fits.BinTableHDU(data=arr, name=name)
    for i, (cname, _) in enumerate(schema, start=1):
        if cname in units:
            hdu.header[f"TUNIT{i}"] = units[cname]
    return hdu


def write_sweep(path: str, columns: dict[str, np.ndarray]) -> None:
    """Write a sweep file (HDU1 = the DR10 column set of :data:`SWEEP_SCHEMA`)."""
    hdu = table_hdu(columns, SWEEP_SCHEMA, SWEEP_UNITS)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path, overwrite=True)


def write_fits_gz(path: str, hdu: fits.BinTableHDU) -> None:
    """Write a gzipped FITS file with a fixed (zero) gzip timestamp and no stored file name."""
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buf)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as fh, gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0) as gz:
        gz.write(buf.getvalue())
