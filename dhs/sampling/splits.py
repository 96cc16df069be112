"""Spatially disjoint train/val/test splits over HEALPix sky blocks, balanced by objects.

Every position belongs to one HEALPix pixel (a *block*, via ``astropy_healpix``); every block goes to
exactly one split, so the splits are disjoint on the sky. Blocks are visited in the order of
``xxhash64("hpx<nside>:<pixel>", seed)`` (a deterministic shuffle) and each is given to the split whose
object count is furthest below its target share of the objects seen so far. The final share of every
split is then within about one block's weight of its target, whatever the clustering of the objects.
"""

from __future__ import annotations

from collections.abc import Mapping

import astropy.units as u
import numpy as np
from astropy_healpix import HEALPix

from dhs.sampling.hashing import hash64_array

__all__ = [
    "DEFAULT_FRACTIONS",
    "assign_blocks",
    "block_keys",
    "check_fractions",
    "healpix_block",
    "split_of_blocks",
]

DEFAULT_FRACTIONS: dict[str, float] = {"train": 0.70, "val": 0.15, "test": 0.15}


def check_fractions(fractions: Mapping[str, float]) -> dict[str, float]:
    """Validate split fractions (non-empty, each > 0, summing to 1 within 1e-6).

    Returns a plain dict in a canonical order (sorted by split name), so that every result derived from
    it (tie-breaks, cumulative edges) is the same however the configuration happened to order its keys.
    """
    fr = {str(k): float(fractions[k]) for k in sorted(fractions, key=str)}
    if not fr:
        raise ValueError("split fractions are empty; expected e.g. {'train': 0.7, 'val': 0.15, 'test': 0.15}")
    bad = {k: v for k, v in fr.items() if not (v > 0)}
    if bad:
        raise ValueError(f"split fractions must be > 0, got {bad}")
    if abs(sum(fr.values()) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must sum to 1, got {fr} (sum {sum(fr.values())})")
    return fr


def healpix_block(ra_deg: np.ndarray, dec_deg: np.ndarray, nside: int, order: str = "nested") -> np.ndarray:
    """HEALPix pixel index (int64) of each position (deg) at ``nside`` (pixel area 41253/(12·nside²) deg²)."""
    hp = HEALPix(nside=int(nside), order=order)
    ra = np.asarray(ra_deg, dtype=np.float64)
    dec = np.asarray(dec_deg, dtype=np.float64)
    if not (np.all(np.isfinite(ra)) and np.all(np.isfinite(dec))):
        raise ValueError("healpix_block: ra/dec must be finite")
    return np.asarray(hp.lonlat_to_healpix(np.mod(ra, 360.0) * u.deg, dec * u.deg), dtype=np.int64)


def block_keys(blocks: np.ndarray, nside: int) -> list[str]:
    """Stable string keys of blocks, ``"hpx<nside>:<pixel>"`` (the strings that are hashed)."""
    return [f"hpx{int(nside)}:{int(b)}" for b in np.asarray(blocks).tolist()]


def assign_blocks(
    blocks: np.ndarray,
    weights: np.ndarray,
    fractions: Mapping[str, float],
    seed: int,
    nside: int,
) -> np.ndarray:
    """Split name for each distinct block.

    ``blocks``: distinct HEALPix pixels; ``weights``: objects in each (≥ 0). Visits blocks in the order
    of their xxhash64 (seed ``seed``) and gives each to the split with the largest deficit
    ``fraction·(weight seen so far) − weight already assigned`` (ties: split names in sorted order).
    Returns an array of split names aligned with ``blocks``. Deterministic for a seed and independent
    of the input order.
    """
    fr = check_fractions(fractions)
    names = list(fr)
    target = np.array([fr[n] for n in names])
    blocks = np.asarray(blocks, dtype=np.int64)
    w = np.asarray(weights, dtype=np.float64)
    if blocks.shape != w.shape:
        raise ValueError(f"blocks and weights differ in shape: {blocks.shape} vs {w.shape}")
    if len(np.unique(blocks)) != len(blocks):
        raise ValueError("assign_blocks: blocks must be distinct")
    if np.any(~np.isfinite(w)) or np.any(w < 0):
        raise ValueError("assign_blocks: weights must be finite and ≥ 0")
    h = hash64_array(block_keys(blocks, nside), seed)
    order = np.lexsort((blocks, h))
    cur = np.zeros(len(names))
    seen = 0.0
    choice = np.empty(len(blocks), dtype=np.int64)
    for k in order.tolist():
        seen += w[k]
        deficit = target * seen - cur
        s = int(np.argmax(deficit))
        choice[k] = s
        cur[s] += w[k]
    return np.array(names, dtype=object)[choice].astype(str)


def split_of_blocks(
    ra_deg: np.ndarray,
    dec_deg: np.ndarray,
    nside: int,
    fractions: Mapping[str, float],
    seed: int,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Split per position: positions are grouped into HEALPix blocks, blocks weighted by the number
    (or summed ``weights``) of positions in them and assigned by :func:`assign_blocks`.
    Returns ``(split_name, block)`` arrays aligned with the input."""
    block = healpix_block(ra_deg, dec_deg, nside)
    uniq, inv = np.unique(block, return_inverse=True)
    wts = np.ones(len(block)) if weights is None else np.asarray(weights, dtype=np.float64)
    per_block = np.bincount(inv, weights=wts, minlength=len(uniq))
    names = assign_blocks(uniq, per_block, fractions, seed, nside)
    return names[inv], block
