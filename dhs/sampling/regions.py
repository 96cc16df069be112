"""Brick quality, true sky adjacency of bricks, capped region growth and region metrics.

Bricks are RA/Dec rectangles ``[ra1, ra2) × [dec1, dec2)`` in degrees (RA may wrap at 0/360). Two bricks
are *adjacent* when they share an edge of positive length on the sky: same Dec row and touching RA edges
(modulo 360), or touching Dec edges with overlapping RA ranges (modulo 360). Neighbour candidates are
found with a KD-tree on unit vectors, so RA wrap and cos δ are handled by construction.

Regions are groups of adjacent quality bricks grown compactly (nearest bricks to the seed first) up to a
size cap, so that no region percolates across the footprint.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

__all__ = [
    "QualityCuts",
    "brick_adjacency",
    "brick_area_deg2",
    "brick_quality",
    "grow_regions",
    "region_metrics",
]

_TOL_DEG = 1e-6


def _wrap180(x: np.ndarray) -> np.ndarray:
    """Angles (deg) mapped to (−180, 180]."""
    y = np.mod(np.asarray(x, dtype=np.float64) + 180.0, 360.0) - 180.0
    return np.where(y == -180.0, 180.0, y)


def _ra_width(ra1: np.ndarray, ra2: np.ndarray) -> np.ndarray:
    """RA extent (deg) of ``[ra1, ra2)`` allowing a wrap; a full circle stays 360."""
    w = np.mod(np.asarray(ra2, dtype=np.float64) - np.asarray(ra1, dtype=np.float64), 360.0)
    return np.where((w == 0) & (np.asarray(ra2) != np.asarray(ra1)), 360.0, w)


def brick_area_deg2(ra1: np.ndarray, ra2: np.ndarray, dec1: np.ndarray, dec2: np.ndarray) -> np.ndarray:
    """Solid angle (deg²) of RA/Dec rectangles: ΔRA · (sin dec2 − sin dec1) · 180/π."""
    dsin = np.sin(np.radians(np.asarray(dec2, dtype=np.float64))) - np.sin(np.radians(np.asarray(dec1, dtype=np.float64)))
    return _ra_width(ra1, ra2) * np.degrees(dsin)


def _unit_vectors(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    ra = np.radians(np.asarray(ra_deg, dtype=np.float64))
    dec = np.radians(np.asarray(dec_deg, dtype=np.float64))
    return np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])


def _centres(ra1: np.ndarray, ra2: np.ndarray, dec1: np.ndarray, dec2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ra = np.mod(np.asarray(ra1, dtype=np.float64) + 0.5 * _ra_width(ra1, ra2), 360.0)
    return ra, 0.5 * (np.asarray(dec1, dtype=np.float64) + np.asarray(dec2, dtype=np.float64))


@dataclass(frozen=True)
class QualityCuts:
    """Per-brick quality cuts; a NaN value fails its cut.

    ``ebv_max`` (mag, SFD E(B−V)), ``psfsize_r_max`` (arcsec, PSFSIZE = NEA-equivalent Gaussian FWHM),
    ``psfdepth_r_mag5_min`` (5σ point-source depth, AB mag), ``min_n_gal`` (catalogue galaxies per brick).
    """

    ebv_max: float = 0.12
    psfsize_r_max: float = 1.6
    psfdepth_r_mag5_min: float = 23.6
    min_n_gal: int = 0


def brick_quality(
    ebv: np.ndarray, psfsize_r: np.ndarray, psfdepth_r_mag5: np.ndarray, n_gal: np.ndarray, cuts: QualityCuts
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Quality flag per brick and the per-cut pass arrays (``ebv``, ``psfsize_r``, ``psfdepth_r``,
    ``n_gal``). Cuts are inclusive (ebv ≤ max, psfsize ≤ max, depth ≥ min, n_gal ≥ min); NaN fails."""
    with np.errstate(invalid="ignore"):
        parts = {
            "ebv": np.asarray(ebv, dtype=np.float64) <= cuts.ebv_max,
            "psfsize_r": np.asarray(psfsize_r, dtype=np.float64) <= cuts.psfsize_r_max,
            "psfdepth_r": np.asarray(psfdepth_r_mag5, dtype=np.float64) >= cuts.psfdepth_r_mag5_min,
            "n_gal": np.asarray(n_gal, dtype=np.float64) >= cuts.min_n_gal,
        }
    ok = np.ones(len(parts["ebv"]), dtype=bool)
    for p in parts.values():
        ok &= p
    return ok, parts


def brick_adjacency(
    ra1: np.ndarray, ra2: np.ndarray, dec1: np.ndarray, dec2: np.ndarray, tol_deg: float = _TOL_DEG
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edge-sharing neighbour pairs among bricks.

    Returns ``(i, j, shared_deg)`` with ``i < j`` and the on-sky length (deg) of the shared edge:
    the Dec height for RA neighbours, ΔRA_overlap · cos(dec_edge) for Dec neighbours. Corner-only
    contact is not adjacency.
    """
    ra1 = np.asarray(ra1, dtype=np.float64) % 360.0
    ra2 = np.asarray(ra2, dtype=np.float64)
    dec1 = np.asarray(dec1, dtype=np.float64)
    dec2 = np.asarray(dec2, dtype=np.float64)
    n = len(ra1)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))
    if n < 2:
        return empty
    width = _ra_width(ra1, ra2)
    height = dec2 - dec1
    cra, cdec = _centres(ra1, ra2, dec1, dec2)
    # Largest on-sky diagonal: height and RA width at the edge nearest the equator.
    cos_max = np.cos(np.radians(np.where(dec1 * dec2 <= 0, 0.0, np.minimum(np.abs(dec1), np.abs(dec2)))))
    diag = np.sqrt(height**2 + (np.minimum(width, 180.0) * cos_max) ** 2)
    radius = np.radians(1.05 * float(diag.max()) + 1e-6)
    tree = cKDTree(_unit_vectors(cra, cdec))
    pairs = tree.query_pairs(2.0 * np.sin(min(radius, np.pi) / 2.0), output_type="ndarray")
    if len(pairs) == 0:
        return empty
    i, j = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
    same_row = (np.abs(dec1[i] - dec1[j]) < tol_deg) & (np.abs(dec2[i] - dec2[j]) < tol_deg)
    touch_ra = (np.abs(_wrap180(ra1[j] - (ra1[i] + width[i]))) < tol_deg) | (
        np.abs(_wrap180(ra1[i] - (ra1[j] + width[j]))) < tol_deg
    )
    ra_nb = same_row & touch_ra
    # Dec neighbours: i above j or j above i, RA ranges overlapping (consider the ±360 images).
    up = np.abs(dec2[i] - dec1[j]) < tol_deg
    down = np.abs(dec1[i] - dec2[j]) < tol_deg
    b0 = _wrap180(ra1[j] - ra1[i])
    overlap = np.zeros(len(i))
    for shift in (-360.0, 0.0, 360.0):
        lo = np.maximum(0.0, b0 + shift)
        hi = np.minimum(width[i], b0 + shift + width[j])
        overlap += np.clip(hi - lo, 0.0, None)
    overlap = np.minimum(overlap, np.minimum(width[i], width[j]))
    dec_edge = np.where(up, dec2[i], dec1[i])
    dec_nb = (up | down) & (overlap > tol_deg)
    shared = np.where(ra_nb, np.minimum(height[i], height[j]), overlap * np.cos(np.radians(dec_edge)))
    keep = ra_nb | dec_nb
    order = np.lexsort((j[keep], i[keep]))
    return i[keep][order], j[keep][order], shared[keep][order]


def grow_regions(
    ra1: np.ndarray,
    ra2: np.ndarray,
    dec1: np.ndarray,
    dec2: np.ndarray,
    ok: np.ndarray,
    *,
    max_bricks: int,
    max_area_deg2: float | None = None,
    keys: Sequence[str] | None = None,
) -> np.ndarray:
    """Group adjacent quality bricks into compact, capped regions.

    Seeds are taken in a fixed order (Dec row ascending, then RA ascending, then ``keys``); from each
    unassigned seed a region grows through edge-sharing quality bricks, always adding the unassigned
    neighbour whose centre is nearest (great circle) the seed, until it holds ``max_bricks`` bricks or
    ``max_area_deg2`` deg². Returns ``region_id`` per brick (0, 1, … in seed order; −1 for bricks that
    fail quality). Deterministic: depends only on the brick table, not on its row order.
    """
    ok = np.asarray(ok, dtype=bool)
    n = len(ok)
    if max_bricks < 1:
        raise ValueError(f"max_bricks must be ≥ 1, got {max_bricks}")
    region = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return region
    ra1 = np.asarray(ra1, dtype=np.float64) % 360.0
    dec1 = np.asarray(dec1, dtype=np.float64)
    dec2 = np.asarray(dec2, dtype=np.float64)
    area = brick_area_deg2(ra1, ra2, dec1, dec2)
    cra, cdec = _centres(ra1, ra2, dec1, dec2)
    xyz = _unit_vectors(cra, cdec)
    ai, aj, _ = brick_adjacency(ra1, ra2, dec1, dec2)
    both = ok[ai] & ok[aj]
    ai, aj = ai[both], aj[both]
    nbrs: list[list[int]] = [[] for _ in range(n)]
    for a, b in zip(ai.tolist(), aj.tolist()):
        nbrs[a].append(b)
        nbrs[b].append(a)
    tiebreak = np.asarray(keys if keys is not None else np.arange(n)).astype(str)
    seed_order = np.lexsort((tiebreak, ra1, np.round(dec1, 6)))
    rank = np.empty(n, dtype=np.int64)
    rank[seed_order] = np.arange(n)
    area_cap = np.inf if max_area_deg2 is None else float(max_area_deg2)
    next_id = 0
    for s in seed_order.tolist():
        if not ok[s] or region[s] >= 0:
            continue
        rid = next_id
        next_id += 1
        region[s] = rid
        count, tot_area = 1, float(area[s])
        heap: list[tuple[float, int, int]] = []
        _push_neighbours(heap, s, s, nbrs, region, xyz, rank)
        while heap and count < max_bricks:
            _, _, b = heapq.heappop(heap)
            if region[b] >= 0:
                continue
            if tot_area + area[b] > area_cap:
                continue
            region[b] = rid
            count += 1
            tot_area += float(area[b])
            _push_neighbours(heap, b, s, nbrs, region, xyz, rank)
    return region


def _push_neighbours(
    heap: list[tuple[float, int, int]], b: int, seed: int, nbrs: list[list[int]], region: np.ndarray,
    xyz: np.ndarray, rank: np.ndarray,
) -> None:
    """Push the unassigned neighbours of brick ``b``, keyed by distance from the seed, then seed order."""
    for nb in nbrs[b]:
        if region[nb] < 0:
            d = float(1.0 - np.dot(xyz[seed], xyz[nb]))  # 1 − cos(angle): monotonic in angular distance
            heapq.heappush(heap, (round(d, 15), int(rank[nb]), nb))


def _pct(values: np.ndarray, q: float) -> float:
    v = values[np.isfinite(values)]
    return float(np.percentile(v, q)) if len(v) else float("nan")


def region_metrics(
    region_id: np.ndarray,
    bricks: Mapping[str, np.ndarray],
    lrg_counts: Mapping[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Per-region metrics from per-brick columns.

    ``bricks`` needs ``ra1, ra2, dec1, dec2`` (deg), ``n_gal``, ``psfsize_r`` (arcsec),
    ``psfdepth_r_mag5`` (AB mag), ``ebv`` (mag); ``lrg_counts`` maps a variant name to per-brick LRG
    counts. Bricks with ``region_id < 0`` are ignored. Returns columns (one entry per region, sorted by
    region_id): ``region_id, n_bricks, area_deg2, n_gal, ra_center, dec_center, n_lrg_<v>,
    density_<v>`` (LRGs per deg²), ``{psfsize_r, psfdepth_r_mag5, ebv}_p{10,50,90}`` (over bricks)
    and ``compactness`` = 4π·area / perimeter² (1 for a disc, π/4 for a square; perimeter from the
    brick edges not shared with another brick of the region).
    """
    region_id = np.asarray(region_id, dtype=np.int64)
    ra1, ra2 = np.asarray(bricks["ra1"], np.float64), np.asarray(bricks["ra2"], np.float64)
    dec1, dec2 = np.asarray(bricks["dec1"], np.float64), np.asarray(bricks["dec2"], np.float64)
    area = brick_area_deg2(ra1, ra2, dec1, dec2)
    width = _ra_width(ra1, ra2)
    perim = 2.0 * (dec2 - dec1) + width * (np.cos(np.radians(dec1)) + np.cos(np.radians(dec2)))
    ai, aj, shared = brick_adjacency(ra1, ra2, dec1, dec2)
    same = (region_id[ai] == region_id[aj]) & (region_id[ai] >= 0)
    ids = np.unique(region_id[region_id >= 0])
    idx = np.searchsorted(ids, region_id)
    sel = region_id >= 0
    nreg = len(ids)

    def rsum(values: np.ndarray) -> np.ndarray:
        return np.bincount(idx[sel], weights=np.asarray(values, np.float64)[sel], minlength=nreg)

    shared_sum = np.bincount(idx[ai[same]], weights=shared[same], minlength=nreg)
    reg_area = rsum(area)
    reg_perim = rsum(perim) - 2.0 * shared_sum
    cra, cdec = _centres(ra1, ra2, dec1, dec2)
    xyz = _unit_vectors(cra, cdec) * area[:, None]
    vec = np.column_stack([rsum(xyz[:, k]) for k in range(3)])
    out: dict[str, np.ndarray] = {
        "region_id": ids,
        "n_bricks": np.bincount(idx[sel], minlength=nreg).astype(np.int64),
        "area_deg2": reg_area,
        "n_gal": rsum(bricks["n_gal"]).astype(np.int64),
        "ra_center": np.mod(np.degrees(np.arctan2(vec[:, 1], vec[:, 0])), 360.0),
        "dec_center": np.degrees(np.arctan2(vec[:, 2], np.hypot(vec[:, 0], vec[:, 1]))),
    }
    for v, counts in lrg_counts.items():
        n_lrg = rsum(counts)
        out[f"n_lrg_{v}"] = n_lrg.astype(np.int64)
        out[f"density_{v}"] = np.where(reg_area > 0, n_lrg / np.where(reg_area > 0, reg_area, 1.0), np.nan)
    order = np.flatnonzero(sel)[np.argsort(region_id[sel], kind="stable")]
    members = np.split(order, np.cumsum(np.bincount(idx[sel], minlength=nreg))[:-1]) if nreg else []
    for col in ("psfsize_r", "psfdepth_r_mag5", "ebv"):
        vals = np.asarray(bricks[col], dtype=np.float64)
        for q in (10, 50, 90):
            out[f"{col}_p{q}"] = np.array([_pct(vals[m], q) for m in members], dtype=np.float64)
    out["compactness"] = np.where(reg_perim > 0, 4.0 * np.pi * reg_area / np.maximum(reg_perim, 1e-300) ** 2, np.nan)
    return out
