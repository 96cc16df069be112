"""Stamp array codecs for the stage 4c outputs (docs/stamps.md).

The `stamp`, `arc` and `invvar` columns of ``phase4c/<variant>/stamps/<experiment_id>/`` hold raw
little-endian float32 bytes of a C-ordered array of shape (bands, H, W), band order g, r, z.
``stamp`` is in nanomaggies per pixel (host + arc), ``arc`` in nanomaggies per pixel, ``invvar`` in
1/nanomaggy².  The optional ``maskbits`` column holds little-endian int32 bytes of shape (H, W).
``stamp_size`` (H = W) is a column of the same row, and there are always 3 bands.

Reading a stamp back::

    import pyarrow.parquet as pq
    from dhs.io.stamps import decode
    t = pq.read_table(".../phase4c/<variant>/stamps/<experiment_id>", columns=["task_id", "stamp", "stamp_size"])
    row = t.slice(0, 1).to_pylist()[0]
    img = decode(row["stamp"], size=row["stamp_size"])      # (3, H, W) float32, g/r/z

The optional ``stamp_npz`` encoding (`encode_npz` / `decode_npz`) is the seed system's format: the bytes of
an ``np.savez_compressed`` archive with keys ``image_g``, ``image_r``, ``image_z`` (each (H, W) float32).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np

BANDS: tuple[str, ...] = ("g", "r", "z")
FLOAT_DTYPE = np.dtype("<f4")
MASK_DTYPE = np.dtype("<i4")


def encode(arr: np.ndarray) -> bytes:
    """Encode an array as little-endian float32 bytes in C order.

    Parameters
    ----------
    arr : array of any real dtype, typically (bands, H, W); values are cast to float32.

    Returns
    -------
    bytes of length ``arr.size * 4``.
    """
    a = np.asarray(arr)
    if a.dtype != FLOAT_DTYPE:
        a = a.astype(FLOAT_DTYPE)
    return np.ascontiguousarray(a).tobytes(order="C")


def decode(blob: bytes | bytearray | memoryview, shape: Sequence[int] | None = None, *,
           size: int | None = None, n_bands: int = 3) -> np.ndarray:
    """Decode a stamp/arc/invvar blob into a numpy float32 array of shape (bands, H, W).

    Parameters
    ----------
    blob : the bytes stored in the Parquet column (float32 little-endian, C order).
    shape : explicit shape, e.g. ``(3, 64, 64)``. If omitted, the shape is (n_bands, size, size) with
        ``size`` given, or inferred as a square stamp from the blob length and ``n_bands``.
    size : stamp side in pixels (the row's ``stamp_size``).
    n_bands : number of bands (3 for g, r, z).

    Returns
    -------
    A writable native-endian float32 array (a copy, not a view of the blob).

    Raises
    ------
    ValueError if the blob is None/empty or its length does not match the shape.
    """
    if blob is None:
        raise ValueError("decode: blob is None (failure rows have no stamp; check cutout_ok)")
    buf = bytes(blob) if not isinstance(blob, (bytes, bytearray)) else blob
    n = len(buf) // FLOAT_DTYPE.itemsize
    if len(buf) == 0 or len(buf) % FLOAT_DTYPE.itemsize:
        raise ValueError(f"decode: blob of {len(buf)} bytes is not a non-empty float32 array")
    if shape is None:
        if size is None:
            side = math.isqrt(n // n_bands) if n % n_bands == 0 else -1
            if side <= 0 or side * side * n_bands != n:
                raise ValueError(f"decode: cannot infer a square ({n_bands}, H, W) shape from {n} values; "
                                 "pass shape= or size=")
            size = side
        shape = (n_bands, int(size), int(size))
    shape = tuple(int(s) for s in shape)
    if int(np.prod(shape)) != n:
        raise ValueError(f"decode: blob holds {n} float32 values but shape {shape} needs {int(np.prod(shape))}")
    return np.frombuffer(buf, dtype=FLOAT_DTYPE).reshape(shape).astype(np.float32, copy=True)


def encode_mask(mask: np.ndarray) -> bytes:
    """Encode an (H, W) integer mask (MASKBITS) as little-endian int32 bytes, C order."""
    return np.ascontiguousarray(np.asarray(mask).astype(MASK_DTYPE)).tobytes(order="C")


def decode_mask(blob: bytes, size: int) -> np.ndarray:
    """Decode a ``maskbits`` blob into an (size, size) int32 array."""
    if blob is None:
        raise ValueError("decode_mask: blob is None")
    n = len(blob) // MASK_DTYPE.itemsize
    if n != size * size or len(blob) % MASK_DTYPE.itemsize:
        raise ValueError(f"decode_mask: blob of {len(blob)} bytes does not hold ({size}, {size}) int32")
    return np.frombuffer(blob, dtype=MASK_DTYPE).reshape(size, size).astype(np.int32, copy=True)


def encode_npz(arr: np.ndarray, bands: Sequence[str] = BANDS) -> bytes:
    """Encode (bands, H, W) as an ``np.savez_compressed`` archive with keys ``image_<band>`` (float32)."""
    a = np.asarray(arr, dtype=np.float32)
    if a.ndim != 3 or a.shape[0] != len(bands):
        raise ValueError(f"encode_npz: expected shape ({len(bands)}, H, W), got {a.shape}")
    bio = io.BytesIO()
    np.savez_compressed(bio, **{f"image_{b}": a[i] for i, b in enumerate(bands)})
    return bio.getvalue()


def decode_npz(blob: bytes, bands: Sequence[str] = BANDS) -> np.ndarray:
    """Decode a ``stamp_npz`` blob into a (bands, H, W) float32 array (keys ``image_<band>``)."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        missing = [f"image_{b}" for b in bands if f"image_{b}" not in z.files]
        if missing:
            raise ValueError(f"decode_npz: archive lacks keys {missing} (has {z.files})")
        return np.stack([z[f"image_{b}"].astype(np.float32) for b in bands])
