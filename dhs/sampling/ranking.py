"""Region ranking scores and selection sets.

Scores (per region, for one LRG variant):

* ``density``       = Σ n_lrg / Σ area  (LRGs per deg²)
* ``n_lrg``         = Σ n_lrg
* ``area_weighted`` = density · area^α  (α = 0.5 by default; area in deg²)
* ``psf_weighted``  = density · w_psf · w_depth · w_ebv with
  w_psf = clip(exp(−(psf_p50 − 1.25″)/0.25″), 0, 1), w_depth = logistic((depth_p50 − 23.8 mag)/0.25 mag),
  w_ebv = exp(−4·ebv_p50)  (psf = median PSFSIZE_r in arcsec, depth = median 5σ psfdepth_r in AB mag).

Selection sets pick regions per split: ``topk`` takes the K best by a score; ``stratified`` takes N
regions spread over quantile bins of a score with given weights, choosing inside a bin by xxhash64 of the
region id (deterministic). Each set has an id such as ``topk_density_k100`` or ``strat_density_q5_n100``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from dhs.sampling.hashing import hash64_array

__all__ = [
    "SCORES",
    "ScoreParams",
    "SelectionSpec",
    "region_scores",
    "select_regions",
    "selection_set_id",
    "selection_sets_per_region",
]

SCORES = ("density", "n_lrg", "area_weighted", "psf_weighted")


@dataclass(frozen=True)
class ScoreParams:
    """Constants of the scores (units: arcsec for psf, AB mag for depth, mag for E(B−V))."""

    area_alpha: float = 0.5
    psf_ref_arcsec: float = 1.25
    psf_scale_arcsec: float = 0.25
    depth_ref_mag: float = 23.8
    depth_scale_mag: float = 0.25
    ebv_coeff: float = 4.0


def region_scores(
    n_lrg: np.ndarray,
    area_deg2: np.ndarray,
    psfsize_r_p50: np.ndarray,
    psfdepth_r_mag5_p50: np.ndarray,
    ebv_p50: np.ndarray,
    params: ScoreParams = ScoreParams(),
) -> dict[str, np.ndarray]:
    """The four scores (``score_<name>``) per region plus the weights ``w_psf, w_depth, w_ebv``.
    A region with zero area has NaN density-based scores."""
    n = np.asarray(n_lrg, dtype=np.float64)
    a = np.asarray(area_deg2, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        density = np.where(a > 0, n / a, np.nan)
    w_psf = np.clip(np.exp(-(np.asarray(psfsize_r_p50, np.float64) - params.psf_ref_arcsec) / params.psf_scale_arcsec), 0.0, 1.0)
    x = (np.asarray(psfdepth_r_mag5_p50, np.float64) - params.depth_ref_mag) / params.depth_scale_mag
    w_depth = 0.5 * (1.0 + np.tanh(0.5 * x))  # logistic, overflow-free
    w_ebv = np.exp(-params.ebv_coeff * np.asarray(ebv_p50, np.float64))
    return {
        "score_density": density,
        "score_n_lrg": n,
        "score_area_weighted": density * np.power(np.clip(a, 0.0, None), params.area_alpha),
        "score_psf_weighted": density * w_psf * w_depth * w_ebv,
        "w_psf": w_psf,
        "w_depth": w_depth,
        "w_ebv": w_ebv,
    }


@dataclass(frozen=True)
class SelectionSpec:
    """One selection set. ``kind`` "topk" (``k`` best by ``score`` per split) or "stratified" (``n`` per
    split over ``n_bins`` quantile bins of ``score``, allotted by ``weights``, default equal)."""

    kind: str
    score: str = "density"
    k: int = 100
    n: int = 100
    n_bins: int = 5
    weights: tuple[float, ...] = field(default_factory=tuple)
    id: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("topk", "stratified"):
            raise ValueError(f"selection set kind must be 'topk' or 'stratified', got {self.kind!r}")
        if self.score not in SCORES:
            raise ValueError(f"selection set score must be one of {SCORES}, got {self.score!r}")
        if self.kind == "stratified" and self.weights and len(self.weights) != self.n_bins:
            raise ValueError(
                f"stratified selection {self.set_id}: weights has {len(self.weights)} entries, n_bins is {self.n_bins}"
            )

    @property
    def set_id(self) -> str:
        return selection_set_id(self)


def selection_set_id(spec: SelectionSpec) -> str:
    """``topk_<score>_k<K>`` or ``strat_<score>_q<bins>_n<N>`` (or the spec's explicit ``id``)."""
    if spec.id:
        return spec.id
    if spec.kind == "topk":
        return f"topk_{spec.score}_k{spec.k}"
    return f"strat_{spec.score}_q{spec.n_bins}_n{spec.n}"


def _largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    exact = total * w / w.sum()
    base = np.floor(exact).astype(np.int64)
    rest = total - int(base.sum())
    if rest > 0:
        base[np.argsort(-(exact - base), kind="stable")[:rest]] += 1
    return base


def select_regions(
    region_id: np.ndarray, split: np.ndarray, score: np.ndarray, spec: SelectionSpec, seed: int
) -> np.ndarray:
    """Boolean mask of regions in the selection set, chosen separately within each split.

    Regions with a NaN score are never selected. Top-K ties are broken by region_id. Stratified: bin
    edges are the score quantiles of the split's regions; bin b gets ``round(n·w_b/Σw)`` regions
    (largest remainder), taken in xxhash64 order of ``"<set_id>|<region_id>"``; a bin with fewer regions
    than its quota gives all it has.
    """
    region_id = np.asarray(region_id, dtype=np.int64)
    split = np.asarray(split).astype(str)
    score = np.asarray(score, dtype=np.float64)
    chosen = np.zeros(len(region_id), dtype=bool)
    sid = selection_set_id(spec)
    for s in sorted(set(split.tolist())):
        idx = np.flatnonzero((split == s) & np.isfinite(score))
        if len(idx) == 0:
            continue
        if spec.kind == "topk":
            order = idx[np.lexsort((region_id[idx], -score[idx]))]
            chosen[order[: spec.k]] = True
            continue
        weights = np.asarray(spec.weights or (1.0,) * spec.n_bins, dtype=np.float64)
        quota = _largest_remainder(spec.n, weights)
        edges = np.quantile(score[idx], np.linspace(0.0, 1.0, spec.n_bins + 1))
        b = np.clip(np.searchsorted(edges[1:-1], score[idx], side="right"), 0, spec.n_bins - 1)
        h = hash64_array([f"{sid}|{int(r)}" for r in region_id[idx]], seed)
        for k in range(spec.n_bins):
            members = idx[b == k]
            if len(members) == 0 or quota[k] == 0:
                continue
            order = members[np.lexsort((region_id[members], h[b == k]))]
            chosen[order[: quota[k]]] = True
    return chosen


def selection_sets_per_region(
    region_id: np.ndarray,
    split: np.ndarray,
    scores: Mapping[str, np.ndarray],
    specs: Sequence[SelectionSpec],
    seed: int,
) -> list[list[str]]:
    """For each region, the ids of the selection sets it belongs to (in spec order).
    ``scores`` maps score names (``density``, ``n_lrg``, …) to per-region arrays."""
    ids = [selection_set_id(s) for s in specs]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"duplicate selection set ids {dup}; give each set a distinct 'id'")
    out: list[list[str]] = [[] for _ in range(len(region_id))]
    for spec, sid in zip(specs, ids):
        if spec.score not in scores:
            raise KeyError(f"selection set {sid}: score {spec.score!r} not computed; have {sorted(scores)}")
        mask = select_regions(region_id, split, scores[spec.score], spec, seed)
        for i in np.flatnonzero(mask).tolist():
            out[i].append(sid)
    return out
