"""Host stratification over PSF × depth quantile bins.

Bins are quantiles of the eligible host pool (all splits together, so a bin means the same seeing or depth
in every split). PSF bins use the catalogue r-band PSFSIZE (arcsec; larger = worse seeing), depth bins the
r-band 5σ point-source depth in AB mag (larger = deeper). Edges are stored in the stage config so that a
later run or a reader can reproduce the binning.
"""

from __future__ import annotations

import numpy as np


def quantile_edges(values: np.ndarray, n_bins: int) -> np.ndarray:
    """``n_bins + 1`` quantile edges of the finite ``values`` (edges[0] = min, edges[-1] = max).

    Raises ValueError when there is no finite value or ``n_bins`` < 1.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1 (got {n_bins})")
    v = np.asarray(values, dtype=np.float64)
    v = np.sort(v[np.isfinite(v)])
    if v.size == 0:
        raise ValueError("cannot compute quantile edges: no finite values")
    probs = edge_probabilities(n_bins)
    return quantiles_from_order_statistics(v.size, probs, {k: float(v[k]) for k in quantile_ranks(v.size, probs)})


def edge_probabilities(n_bins: int) -> np.ndarray:
    """The ``n_bins + 1`` probabilities of the quantile edges (0, 1/n_bins, …, 1)."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1 (got {n_bins})")
    return np.linspace(0.0, 1.0, n_bins + 1)


def _virtual_index(n: int, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """numpy's "linear" quantile rule: virtual index (n − 1)·p, its floor and the next rank (both clipped)."""
    virtual = (n - 1) * np.asarray(probs, dtype=np.float64)
    prev = np.floor(virtual)
    nxt = prev + 1
    top = virtual >= n - 1
    prev[top] = n - 1
    nxt[top] = n - 1
    return virtual, prev.astype(np.int64), np.minimum(nxt, n - 1).astype(np.int64)


def quantile_ranks(n: int, probs: np.ndarray) -> list[int]:
    """0-based ranks (in ascending order of value) whose values the quantiles ``probs`` of ``n`` values need."""
    _, prev, nxt = _virtual_index(n, probs)
    return sorted(set(prev.tolist()) | set(nxt.tolist()))


def quantiles_from_order_statistics(n: int, probs: np.ndarray, value_at_rank: dict[int, float]) -> np.ndarray:
    """The quantiles ``probs`` of ``n`` values from the values at :func:`quantile_ranks` (rank → value):
    the same numbers as ``np.quantile`` (default "linear" method), so a distributed selection of a few
    order statistics reproduces the in-memory result exactly."""
    virtual, prev, nxt = _virtual_index(n, probs)
    a = np.array([value_at_rank[k] for k in prev.tolist()], dtype=np.float64)
    b = np.array([value_at_rank[k] for k in nxt.tolist()], dtype=np.float64)
    t = virtual - np.floor(virtual)
    t[virtual >= n - 1] = 0.0
    diff = b - a
    out = a + diff * t
    hi = t >= 0.5
    out[hi] = b[hi] - diff[hi] * (1 - t[hi])      # numpy's lerp: exact at both ends
    return out


def assign_bins(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index (int32) of each value: ``i`` when edges[i] <= v < edges[i+1]; values below the first edge
    go to bin 0, values at or above the last interior edge to the last bin; NaN gives −1."""
    v = np.asarray(values, dtype=np.float64)
    e = np.asarray(edges, dtype=np.float64)
    out = np.searchsorted(e[1:-1], v, side="right").astype(np.int32)
    out[~np.isfinite(v)] = -1
    return out


def cell_labels(split: np.ndarray, psf_bin: np.ndarray, depth_bin: np.ndarray) -> np.ndarray:
    """String label ``<split>|p<psf_bin>|d<depth_bin>`` of each host's stratification cell."""
    return np.array([f"{s}|p{p}|d{d}" for s, p, d in zip(split.tolist(), psf_bin.tolist(), depth_bin.tolist())],
                    dtype=object)
