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
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError("cannot compute quantile edges: no finite values")
    return np.quantile(v, np.linspace(0.0, 1.0, n_bins + 1))


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
