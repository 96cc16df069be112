"""Matched controls: how many, which host, and which positive each one matches.

Unpaired mode (default): a control is another host from the same split and the same PSF × depth cell as the
positive it matches (``control_of``), never a host that is a positive of the experiment. Paired mode (for
ablations): the control is the positive's own host without the lens.

All functions here are index arithmetic on already ordered arrays (hosts ordered by xxhash64), so the
result depends only on the inputs, not on any partitioning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def control_ratio(fraction: float) -> float:
    """Controls per positive row for a control fraction ``fraction`` = controls / (controls + positives)."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"control fraction must be in [0, 1) (got {fraction})")
    return fraction / (1.0 - fraction)


def cumulative_round(amounts: np.ndarray) -> np.ndarray:
    """Integers n_i with Σ_{j≤i} n_j = round(Σ_{j≤i} a_j): each n_i is within one of a_i and every partial
    sum is within ½ of the exact one, so totals over many cells do not drift."""
    cum = np.round(np.cumsum(np.asarray(amounts, dtype=np.float64))).astype(np.int64)
    return np.diff(np.concatenate([[0], cum]))


def controls_per_cell(n_positive_rows: np.ndarray, fraction: float) -> np.ndarray:
    """Control rows per cell so the overall control fraction is ``fraction`` (cells in a fixed order)."""
    return cumulative_round(np.asarray(n_positive_rows, dtype=np.float64) * control_ratio(fraction))


def reserved_control_hosts(n_hosts: np.ndarray, fraction: float, rows_per_positive_host: int) -> np.ndarray:
    """Train tier: hosts of each cell to keep aside as controls (one control row each) so that
    ``c ≈ (n − c)·rows_per_positive_host·fraction/(1 − fraction)``; at most n − 1 per cell."""
    rr = rows_per_positive_host * control_ratio(fraction)
    n = np.asarray(n_hosts, dtype=np.int64)
    # a control must match a positive of its own cell: keep at least one positive host per non-empty cell
    return np.clip(cumulative_round(n * rr / (1.0 + rr)), 0, np.maximum(n - 1, 0))


@dataclass(frozen=True)
class ControlMatch:
    """Controls of one cell: ``positive`` = index into the cell's positive rows, ``host`` = host index,
    ``j`` = 0 for the first control of that positive, 1 for the second, …"""

    positive: np.ndarray
    host: np.ndarray
    j: np.ndarray


def match_controls(n_controls: int, positive_order: np.ndarray, positive_host: np.ndarray,
                   pool: np.ndarray, paired: bool = False) -> ControlMatch:
    """Assign ``n_controls`` controls in one cell.

    ``positive_order``: indices of the cell's positive rows in matching order (by task hash);
    ``positive_host``: host index of every positive row (indexed like ``positive_order`` values);
    ``pool``: candidate control host indices in hash order (hosts of the cell that are not positives).
    Control k matches positive ``positive_order[k mod P]`` and uses host ``pool[k mod len(pool)]`` (hosts are
    reused only when the pool is smaller than the number of controls), or the positive's own host when
    ``paired``. An empty pool in unpaired mode gives no controls (the caller counts them as missing).
    """
    p = len(positive_order)
    if n_controls <= 0 or p == 0 or (not paired and len(pool) == 0):
        e = np.zeros(0, dtype=np.int64)
        return ControlMatch(e, e, e)
    k = np.arange(n_controls, dtype=np.int64)
    pos = np.asarray(positive_order, dtype=np.int64)[k % p]
    if paired:
        host = np.asarray(positive_host, dtype=np.int64)[pos]
    else:
        host = np.asarray(pool, dtype=np.int64)[k % len(pool)]
    return ControlMatch(positive=pos, host=host, j=k // p)
