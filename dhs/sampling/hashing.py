"""Deterministic hashing and seeded random generators.

Every random draw in dhs derives from these functions, never from Spark ``rand()``, Python's ``hash()``
(salted per process) or numpy's global state, so outputs are identical whatever the partitioning, the
number of cores or the retry history.

Keys are joined as strings with ``"|"`` and hashed with xxhash64; the 64-bit digest is returned as a
*signed* int64 so it fits Spark/Parquet ``long`` columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import xxhash

_SEP = "|"
_TWO64 = float(2**64)


def _to_signed(u: int) -> int:
    return u - (1 << 64) if u >= (1 << 63) else u


def _key(parts: Iterable[object]) -> bytes:
    return _SEP.join(str(p) for p in parts).encode("utf-8")


def stable_hash64(*parts: object, seed: int = 0) -> int:
    """Signed int64 xxhash64 of ``parts`` joined by ``"|"`` (each part formatted with ``str``)."""
    return _to_signed(xxhash.xxh64_intdigest(_key(parts), seed=seed & 0xFFFFFFFFFFFFFFFF))


def unsigned_hash64(*parts: object, seed: int = 0) -> int:
    """Unsigned 64-bit xxhash64 of ``parts`` joined by ``"|"``."""
    return xxhash.xxh64_intdigest(_key(parts), seed=seed & 0xFFFFFFFFFFFFFFFF)


def hash64_array(keys: Sequence[object], seed: int = 0) -> np.ndarray:
    """Signed int64 xxhash64 of each key (formatted with ``str``) with the given seed."""
    s = seed & 0xFFFFFFFFFFFFFFFF
    out = np.fromiter(
        (xxhash.xxh64_intdigest(str(k).encode("utf-8"), seed=s) for k in keys),
        dtype=np.uint64,
        count=len(keys),
    )
    return out.view(np.int64)


def unit_uniform(*parts: object, seed: int = 0) -> float:
    """A number in [0, 1) determined by ``parts`` and ``seed`` (53-bit resolution)."""
    return (unsigned_hash64(*parts, seed=seed) >> 11) / float(1 << 53)


def unit_uniform_array(keys: Sequence[object], seed: int = 0) -> np.ndarray:
    """Vectorised :func:`unit_uniform` over single-part keys; float64 in [0, 1)."""
    u = hash64_array(keys, seed).view(np.uint64)
    return (u >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def rng_from_seed(task_seed: int) -> np.random.Generator:
    """A PCG64 generator seeded with the unsigned 64-bit view of ``task_seed``."""
    return np.random.Generator(np.random.PCG64(int(task_seed) & 0xFFFFFFFFFFFFFFFF))
