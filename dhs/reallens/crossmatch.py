"""Positive crossmatch: known lenses → catalogue objects within a radius, in float64 on the sphere.

Two steps so that the work can be spread over sweep files:

1. :func:`candidate_pairs` (per sweep file): every (lens, object) pair closer than the radius, with the
   great-circle separation from astropy (Vincenty formula on float64 degrees);
2. :func:`resolve_matches` (once, over all pairs): each lens takes its nearest object; exact ties in
   separation go to the smallest object key (``galaxy_id``); an object claimed by several lenses goes to
   the lens with the smallest separation (ties: smallest ``lens_id``) and the others are ``duplicate``
   rows naming the winner; lenses with no object within the radius are ``unmatched``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord

MATCHED, UNMATCHED, DUPLICATE = "matched", "unmatched", "duplicate"


def _coords(ra: np.ndarray, dec: np.ndarray) -> SkyCoord:
    return SkyCoord(np.asarray(ra, dtype=np.float64) * u.deg, np.asarray(dec, dtype=np.float64) * u.deg)


def candidate_pairs(lens_ra: np.ndarray, lens_dec: np.ndarray, obj_ra: np.ndarray, obj_dec: np.ndarray,
                    radius_arcsec: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs with separation ≤ ``radius_arcsec``: ``(lens_index, object_index, sep_arcsec)``.

    Inputs in degrees (converted to float64 first). The search uses a slightly larger radius and the exact
    separations are then compared with the radius, so the boundary is inclusive and exact in float64.
    Pairs are sorted by (lens_index, sep, object_index).
    """
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))
    if np.size(lens_ra) == 0 or np.size(obj_ra) == 0:
        return empty
    lenses = _coords(lens_ra, lens_dec)
    objs = _coords(obj_ra, obj_dec)
    # idx into the search-around coords (lenses) first, then into ``objs``
    il, io, _, _ = objs.search_around_sky(lenses, (radius_arcsec * (1 + 1e-6) + 1e-6) * u.arcsec)
    s = lenses[il].separation(objs[io]).to_value(u.arcsec) if il.size else np.zeros(0)
    keep = s <= radius_arcsec
    il, io, s = il[keep].astype(np.int64), io[keep].astype(np.int64), s[keep].astype(np.float64)
    order = np.lexsort((io, s, il))
    return il[order], io[order], s[order]


@dataclass(frozen=True)
class MatchResult:
    """Per lens (aligned with the lens table): ``status`` (matched/unmatched/duplicate), ``pair_index``
    (index into the pair arrays of the chosen object, −1 if none), ``object_key`` ("" if none),
    ``sep_arcsec`` (NaN if none), ``n_within`` (objects within the radius), ``duplicate_of`` (winning
    lens_id for duplicates, else "")."""

    status: np.ndarray
    pair_index: np.ndarray
    object_key: np.ndarray
    sep_arcsec: np.ndarray
    n_within: np.ndarray
    duplicate_of: np.ndarray

    def counts(self) -> dict[str, int]:
        """Lenses per status."""
        return {k: int(np.sum(self.status == k)) for k in (MATCHED, UNMATCHED, DUPLICATE)}


def resolve_matches(lens_ids: Sequence[str], pair_lens: np.ndarray, pair_key: Sequence[str],
                    pair_sep: np.ndarray) -> MatchResult:
    """Choose one object per lens from candidate pairs gathered anywhere (see module docstring).

    ``lens_ids``: one id per lens (ties between lenses go to the smaller id); ``pair_lens``: lens index of
    each pair; ``pair_key``: object key (``galaxy_id``) of each pair; ``pair_sep``: separation (arcsec).
    The same (lens, key) pair given twice (an object read from two overlapping files) counts once.
    The result does not depend on the order of the pairs.
    """
    n = len(lens_ids)
    ids = np.asarray(list(lens_ids), dtype=object)
    pl = np.asarray(pair_lens, dtype=np.int64)
    pk = np.asarray(list(pair_key), dtype=object).astype(str)
    ps = np.asarray(pair_sep, dtype=np.float64)
    if not (pl.shape == ps.shape == pk.shape):
        raise ValueError(f"pair arrays differ in length: {pl.shape}, {pk.shape}, {ps.shape}")
    if pl.size and (pl.min() < 0 or pl.max() >= n):
        raise ValueError(f"pair lens index out of range 0..{n - 1}")
    status = np.full(n, UNMATCHED, dtype=object)
    pidx = np.full(n, -1, dtype=np.int64)
    okey = np.full(n, "", dtype=object)
    sep = np.full(n, np.nan)
    dup = np.full(n, "", dtype=object)
    nwithin = np.zeros(n, dtype=np.int64)
    if pl.size == 0:
        return MatchResult(status, pidx, okey, sep, nwithin, dup)
    order = np.lexsort((pk, ps, pl))
    pl, pk, ps, orig = pl[order], pk[order], ps[order], order
    # drop repeated (lens, key) pairs, keeping the first (smallest separation)
    seen: set[tuple[int, str]] = set()
    uniq = np.ones(pl.size, dtype=bool)
    for i, (a, b) in enumerate(zip(pl.tolist(), pk.tolist())):
        if (a, b) in seen:
            uniq[i] = False
        seen.add((a, b))
    pl, pk, ps, orig = pl[uniq], pk[uniq], ps[uniq], orig[uniq]
    nwithin[:] = np.bincount(pl, minlength=n)
    first = np.ones(pl.size, dtype=bool)
    first[1:] = pl[1:] != pl[:-1]
    best_l, best_k, best_s, best_o = pl[first], pk[first], ps[first], orig[first]
    # an object claimed by several lenses: smallest separation, then smallest lens_id
    by_obj: dict[str, list[tuple[float, str, int, int]]] = {}
    for li, k, s, o in zip(best_l.tolist(), best_k.tolist(), best_s.tolist(), best_o.tolist()):
        by_obj.setdefault(k, []).append((s, str(ids[li]), li, o))
    for k, claims in by_obj.items():
        claims.sort()
        win = claims[0]
        for s, _, li, o in claims:
            pidx[li], okey[li], sep[li] = o, k, s
            if li == win[2]:
                status[li] = MATCHED
            else:
                status[li] = DUPLICATE
                dup[li] = win[1]
    return MatchResult(status, pidx, okey, sep, nwithin, dup)


def assign_tiers(grades: Sequence[str], grade_to_tier: Mapping[str, str], default_tier: str,
                 weights: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Tier ("A"/"B") and training weight of each lens from its grade.

    Grades are compared with the keys of ``grade_to_tier`` case-insensitively after stripping spaces; an
    empty or unknown grade gets ``default_tier``. Returns ``(tier, weight)`` arrays.
    """
    table = {str(k).strip().lower(): str(v) for k, v in grade_to_tier.items()}
    tiers = np.array([table.get(str(g).strip().lower(), default_tier) for g in grades], dtype=object)
    missing = sorted({t for t in tiers.tolist() if t not in weights})
    if missing:
        raise ValueError(f"stage6.tiers.weights has no weight for tier(s) {missing}")
    w = np.array([float(weights[t]) for t in tiers.tolist()], dtype=np.float64)
    return tiers, w
