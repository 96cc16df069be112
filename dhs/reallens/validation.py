"""Validation of a real-lens training set: shortcut audit, split proportions, spatial disjointness.

The shortcut audit is the stage-4d one (:func:`dhs.completeness.audit.shortcut_audit`): the ROC AUC of
trivial per-stamp features (core brightness per band, total flux, central g − r, outer noise, radial
profile) between positives and negatives with a bootstrap interval; a feature whose separation
max(AUC, 1 − AUC) has a lower bound above ``auc_yellow`` is flagged yellow, above ``auc_red`` red.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord

from dhs.completeness.audit import shortcut_audit
from dhs.config.stage6 import ValidationSettings
from dhs.sampling.hashing import hash64_array


def cap_per_class(keys: Sequence[str], n_max: int, seed: int) -> np.ndarray:
    """Boolean mask of at most ``n_max`` rows, those with the smallest xxhash64(key, seed) (deterministic)."""
    k = np.asarray(list(keys), dtype=object).astype(str)
    if k.size <= n_max:
        return np.ones(k.size, dtype=bool)
    order = np.lexsort((k, hash64_array(k.tolist(), seed)))
    take = np.zeros(k.size, dtype=bool)
    take[order[:n_max]] = True
    return take


def audit(features_pos: Mapping[str, np.ndarray], features_neg: Mapping[str, np.ndarray],
          settings: ValidationSettings, seed: int) -> list[dict[str, Any]]:
    """Shortcut audit of positives vs negatives (one dict per feature, flag "ok"/"yellow"/"red"/"n/a")."""
    return shortcut_audit(features_pos, features_neg, n_boot=settings.n_boot, seed=seed, cl=settings.confidence,
                          limit=settings.auc_yellow, red_limit=settings.auc_red)


def split_proportions(split: Sequence[str], fractions: Mapping[str, float], tolerance: float) -> dict[str, Any]:
    """Counts and shares per split against the target ``fractions``; ``flag`` "yellow" when a share is off
    by more than ``tolerance`` (few HEALPix pixels make large deviations expected), else "ok"."""
    s = np.asarray(list(split), dtype=object).astype(str)
    names, counts = np.unique(s, return_counts=True)
    return split_proportions_from_counts(dict(zip(names.tolist(), counts.tolist())), fractions, tolerance)


def split_proportions_from_counts(counts: Mapping[str, int], fractions: Mapping[str, float],
                                  tolerance: float) -> dict[str, Any]:
    """:func:`split_proportions` from the number of rows per split (what Spark aggregates)."""
    n = int(sum(counts.values()))
    out: dict[str, Any] = {"n": n, "splits": {}}
    worst = 0.0
    for name, f in fractions.items():
        c = int(counts.get(name, 0))
        share = c / n if n else float("nan")
        dev = abs(share - f) if n else float("nan")
        worst = max(worst, dev) if n else worst
        out["splits"][name] = {"count": c, "share": share, "target": float(f), "deviation": dev}
    unknown = sorted(k for k, v in counts.items() if v and k not in fractions)
    out["unknown_splits"] = unknown
    out["max_deviation"] = worst
    out["flag"] = "n/a" if n == 0 else ("red" if unknown else ("yellow" if worst > tolerance else "ok"))
    return out


def pixel_disjointness(pixels: Sequence[int], split: Sequence[str]) -> dict[str, Any]:
    """HEALPix pixels that hold rows of more than one split (must be none)."""
    p = np.asarray(pixels, dtype=np.int64)
    s = np.asarray(list(split), dtype=object).astype(str)
    seen: dict[int, set[str]] = {}
    for a, b in zip(p.tolist(), s.tolist()):
        seen.setdefault(a, set()).add(b)
    shared = sorted(k for k, v in seen.items() if len(v) > 1)
    return disjointness_summary(len(seen), len(shared), shared[:10])


def disjointness_summary(n_pixels: int, n_shared: int, examples: Sequence[int]) -> dict[str, Any]:
    """The disjointness record from the number of pixels, of pixels holding several splits and up to ten
    of the latter (smallest first)."""
    return {"pixels": int(n_pixels), "pixels_in_several_splits": int(n_shared),
            "examples": [int(x) for x in sorted(examples)[:10]], "disjoint": not n_shared}


def cross_split_neighbours(ra: np.ndarray, dec: np.ndarray, split: Sequence[str], radius_arcsec: float
                           ) -> dict[str, Any]:
    """Pairs of rows in different splits closer than ``radius_arcsec`` (objects at a pixel border can be
    near each other even though pixels are disjoint; reported, not an error)."""
    ra = np.asarray(ra, dtype=np.float64)
    s = np.asarray(list(split), dtype=object).astype(str)
    if ra.size < 2 or radius_arcsec <= 0:
        return {"radius_arcsec": radius_arcsec, "pairs": 0}
    c = SkyCoord(ra * u.deg, np.asarray(dec, dtype=np.float64) * u.deg)
    i, j, _, _ = c.search_around_sky(c, radius_arcsec * u.arcsec)
    sel = (i < j) & (s[i] != s[j])
    return {"radius_arcsec": radius_arcsec, "pairs": int(sel.sum())}


def _zone_cells(zone: np.ndarray, radius_deg: float) -> np.ndarray:
    """RA cells per Dec zone (zones ``radius_deg`` high): each cell spans at least ``radius_deg`` on the sky
    at the zone's edge nearest the pole."""
    lo = zone * radius_deg - 90.0
    pole = np.minimum(np.maximum(np.abs(lo), np.abs(lo + radius_deg)), 90.0)
    return np.maximum(1, np.floor(360.0 * np.cos(np.radians(pole)) / radius_deg)).astype(np.int64)


def sky_cell_keys(ra: np.ndarray, dec: np.ndarray, radius_arcsec: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cells of a sky grid (Dec zones × RA cells, every cell at least ``radius_arcsec`` wide) for pair searches:
    ``(own, row, key)`` = each position's own cell key, and for every position (``row`` = its index) the keys
    of the cells that can hold a neighbour within the radius (its own and the adjacent ones, no repeats).
    Joining ``key`` to ``own`` finds every pair closer than the radius exactly once from each side."""
    ra = np.mod(np.asarray(ra, dtype=np.float64), 360.0)
    dec = np.asarray(dec, dtype=np.float64)
    h = radius_arcsec / 3600.0
    n_zones = int(np.ceil(180.0 / h))
    zone = np.clip(np.floor((dec + 90.0) / h).astype(np.int64), 0, n_zones - 1)

    def key(z: np.ndarray, c: np.ndarray) -> np.ndarray:
        return z * np.int64(1 << 32) + c

    own = key(zone, np.floor(ra / 360.0 * _zone_cells(zone, h)).astype(np.int64) % _zone_cells(zone, h))
    rows, keys = [], []
    idx = np.arange(ra.size)
    for dz in (-1, 0, 1):
        z = zone + dz
        ok = (z >= 0) & (z < n_zones)
        zz, i = z[ok], idx[ok]
        n = _zone_cells(zz, h)
        c0 = np.floor(ra[ok] / 360.0 * n).astype(np.int64)
        for dc in (-1, 0, 1):
            rows.append(i)
            keys.append(key(zz, (c0 + dc) % n))
    row, k = np.concatenate(rows), np.concatenate(keys)
    uniq = np.unique(np.stack([row, k]), axis=1)          # cells repeat where a zone has fewer than 3 cells
    return own, uniq[0], uniq[1]


def report_markdown(summary: Mapping[str, Any]) -> str:
    """The stage-6 report section (Markdown) from the validation summary produced by the stage."""
    lines = ["## Real-lens training set (stage 6)", ""]
    c = summary.get("counts", {})
    lines.append(f"Lenses: {c.get('lenses', '?')} — matched {c.get('matched', '?')}, unmatched "
                 f"{c.get('unmatched', '?')}, duplicates {c.get('duplicate', '?')}. Negative pool: "
                 f"{c.get('pool', '?')} rows (N2 share {summary.get('n2_share', float('nan')):.3f}). Sample: "
                 f"{c.get('sample_negatives', '?')} negatives for {c.get('sample_positives', '?')} positives.")
    if c.get("positives_rejected"):
        why = ", ".join(f"{k} {v}" for k, v in c.get("positives_rejected_first_filter", {}).items() if v)
        lines.append(f"Matched positives failing the pool's footprint/quality filters (kept out of the sample, "
                     f"listed in _stage_config.json): {c['positives_rejected']} ({why}).")
    g = summary.get("gates", {})
    lines += ["", (f"Sampling gates: total reached {g.get('total_reached')}, N1 share "
              f"{g.get('n1_share', float('nan')):.3f} ok {g.get('n1_share_ok')}, every stratum represented "
              f"{g.get('all_strata_represented')} → {'PASS' if g.get('passed') else 'FAIL'}"), ""]
    lines += ["| feature | n pos | n neg | AUC | interval | flag |", "|---|---|---|---|---|---|"]
    for r in summary.get("audit", []):
        lines.append(f"| {r['feature']} | {r['n_pos']} | {r['n_neg']} | {r['auc']:.3f} | "
                     f"[{r['auc_lo']:.3f}, {r['auc_hi']:.3f}] | {r['flag']} |")
    sp = summary.get("splits", {})
    for cls, rep in sp.items():
        shares = ", ".join(f"{k} {v['count']} ({v['share']:.2f} vs {v['target']:.2f})" for k, v in rep["splits"].items())
        lines.append(f"\nSplit proportions ({cls}): {shares} — {rep['flag']}")
    d = summary.get("disjointness", {})
    if d:
        lines.append(f"\nSpatial disjointness: {d.get('pixels_in_several_splits')} of {d.get('pixels')} HEALPix "
                     f"pixels hold several splits; {summary.get('neighbours', {}).get('pairs', 0)} cross-split "
                     f"pairs closer than {summary.get('neighbours', {}).get('radius_arcsec', 0)}″.")
    return "\n".join(lines) + "\n"
