"""Shortcut audit: can trivial stamp features tell positives from controls?

If the central brightness of a stamp alone separates injections from controls (the seed's data had a
core-brightness ROC AUC of 0.95), a CNN can learn that instead of arcs. The audit computes simple features
per stamp, the ROC AUC of each feature between positives and negatives with a stratified bootstrap
interval, and flags features whose *separation* (max(AUC, 1 − AUC), i.e. either direction) has a lower
interval bound above a limit. Reused by stage 6 (real lenses vs non-lenses).

Stamps are (N, bands, H, W) float arrays in nanomaggies per pixel, band order g, r, z; the centre is pixel
(H // 2, W // 2) (the stamp's central pixel, as for cutouts).

Two feature sets: the *full* features (:func:`shortcut_features`) and a *centre-masked* variant
(:func:`centre_masked_features`) computed with the host's core (distance < ``mask_radius_pix``) removed, which
shows how much of the separability lives outside the core. The *null-injection audit* compares null
injections (the injection path with zero source flux) with their matched controls on both sets
(:func:`null_audit_selection` picks the rows): any AUC away from 0.5 there is a label leak of the pipeline
itself (host selection, cut-outs, validity), not of the arcs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

from dhs.sampling.hashing import hash64_array, rng_from_seed, stable_hash64

__all__ = [
    "CENTRE_MASKED",
    "FULL",
    "audit_features",
    "bootstrap_auc",
    "centre_masked_features",
    "flag_level",
    "null_audit_selection",
    "radial_distance",
    "roc_auc",
    "shortcut_audit",
    "shortcut_features",
]

FULL = "full"
CENTRE_MASKED = "centre_masked"


def radial_distance(h: int, w: int) -> np.ndarray:
    """(H, W) distance in pixels of each pixel centre from the central pixel (H // 2, W // 2)."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.hypot(yy - h // 2, xx - w // 2)


def _stamp_array(stamps: np.ndarray, bands: Sequence[str]) -> np.ndarray:
    """The stamps as float64 (N, n_bands, H, W); a clear error for any other shape."""
    a = np.asarray(stamps, dtype=np.float64)
    if a.ndim != 4 or a.shape[1] != len(bands):
        raise ValueError(f"stamps must have shape (N, {len(bands)}, H, W) for bands {tuple(bands)}, got {a.shape}")
    return a


def _finite_sum(pix: np.ndarray) -> np.ndarray:
    """Per row of (N, M) pixels: the sum of the finite ones, NaN when none is finite."""
    return np.where(np.any(np.isfinite(pix), axis=1), np.nansum(pix, axis=1), np.nan)


def _region_flux(a: np.ndarray, region: np.ndarray) -> np.ndarray:
    """(N, n_bands) flux of the pixels in ``region`` (H, W mask): the sum of the finite ones, NaN when none is."""
    return np.where(np.any(np.isfinite(a[:, :, region]), axis=2), np.nansum(a[:, :, region], axis=2), np.nan)


def _flux_colour_features(flux: np.ndarray, total: np.ndarray, bands: Sequence[str], flux_name: str,
                          total_name: str, colour_name: str) -> dict[str, np.ndarray]:
    """``<flux_name>_<band>`` per band, ``total_name`` and, with g and r, ``colour_name`` = −2.5 log10(g / r)
    (mag; NaN unless both fluxes are > 0)."""
    out: dict[str, np.ndarray] = {f"{flux_name}_{b}": flux[:, i] for i, b in enumerate(bands)}
    out[total_name] = total
    if "g" in bands and "r" in bands:
        fg, fr = flux[:, list(bands).index("g")], flux[:, list(bands).index("r")]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[colour_name] = np.where((fg > 0) & (fr > 0), -2.5 * np.log10(fg / fr), np.nan)
    return out


def shortcut_features(
    stamps: np.ndarray,
    bands: Sequence[str] = ("g", "r", "z"),
    core_radius_pix: float = 4.0,
    annulus_inner_frac: float = 0.75,
) -> dict[str, np.ndarray]:
    """Trivial per-stamp features (each an (N,) float64 array).

    - ``central_flux_<band>``: sum of pixels with distance < ``core_radius_pix`` from the centre (nanomaggies).
    - ``total_flux``: sum over all pixels and bands (nanomaggies).
    - ``central_g_minus_r``: −2.5 log10(central g / central r) (mag; NaN if either is ≤ 0).
    - ``outer_noise_mad_<band>`` for the r band (or the middle band): robust σ (1.4826 × MAD, nanomaggies per
      pixel) of the pixels in the annulus ``annulus_inner_frac`` · R ≤ distance < R, R = min(H, W) / 2.
    NaN pixels are ignored (a stamp with no finite pixel in a region gives NaN).
    """
    a = _stamp_array(stamps, bands)
    if core_radius_pix <= 0 or not (0 < annulus_inner_frac < 1):
        raise ValueError(f"need core_radius_pix > 0 and 0 < annulus_inner_frac < 1, got {core_radius_pix}, {annulus_inner_frac}")
    n, nb, h, w = a.shape
    r = radial_distance(h, w)
    big_r = min(h, w) / 2.0
    ann = (r >= annulus_inner_frac * big_r) & (r < big_r)
    out = _flux_colour_features(_region_flux(a, r < core_radius_pix), _finite_sum(a.reshape(n, -1)), bands,
                                "central_flux", "total_flux", "central_g_minus_r")
    nb_r = list(bands).index("r") if "r" in bands else nb // 2
    pix = a[:, nb_r][:, ann]  # (N, n_ann)
    out[f"outer_noise_mad_{bands[nb_r]}"] = stats.median_abs_deviation(pix, axis=1, scale="normal", nan_policy="omit")
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def centre_masked_features(
    stamps: np.ndarray,
    bands: Sequence[str] = ("g", "r", "z"),
    mask_radius_pix: float = 4.0,
    annulus_inner_frac: float = 0.75,
) -> dict[str, np.ndarray]:
    """The audit features with the host's core masked (pixels at distance < ``mask_radius_pix`` dropped).

    - ``masked_flux_<band>``: sum of the pixels with ``mask_radius_pix`` ≤ distance < ``annulus_inner_frac`` · R
      (R = min(H, W) / 2): the ring around the core where arcs of θE ≳ 1″ land (nanomaggies);
    - ``masked_total_flux``: sum over every band of all pixels outside the mask (nanomaggies);
    - ``masked_g_minus_r``: −2.5 log10(masked g / masked r) (mag; NaN if either is ≤ 0).
    The outer-annulus noise feature of :func:`shortcut_features` already excludes the core.
    """
    a = _stamp_array(stamps, bands)
    n, _, h, w = a.shape
    r = radial_distance(h, w)
    outer = annulus_inner_frac * min(h, w) / 2.0
    if not (0 < mask_radius_pix < outer):
        raise ValueError(f"need 0 < mask_radius_pix < annulus_inner_frac * min(H, W) / 2 = {outer:g}, "
                         f"got {mask_radius_pix}")
    ring = (r >= mask_radius_pix) & (r < outer)
    out = _flux_colour_features(_region_flux(a, ring), _finite_sum(a[:, :, r >= mask_radius_pix].reshape(n, -1)),
                                bands, "masked_flux", "masked_total_flux", "masked_g_minus_r")
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def audit_features(
    stamps: np.ndarray,
    bands: Sequence[str] = ("g", "r", "z"),
    core_radius_pix: float = 4.0,
    annulus_inner_frac: float = 0.75,
    mask_radius_pix: float | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Full and centre-masked features of each stamp, and the variant (``full`` / ``centre_masked``) of each
    feature name. ``mask_radius_pix`` defaults to ``core_radius_pix`` (the masked core is the core the
    central-flux features measure)."""
    full = shortcut_features(stamps, bands, core_radius_pix, annulus_inner_frac)
    masked = centre_masked_features(stamps, bands, core_radius_pix if mask_radius_pix is None else mask_radius_pix,
                                    annulus_inner_frac)
    variants = {**{k: FULL for k in full}, **{k: CENTRE_MASKED for k in masked}}
    return {**full, **masked}, variants


NULL_AUDIT_CELL_COLUMNS = ("selection_set_id", "region_split", "psf_bin", "depth_bin")
"""Columns of the stratification cell (stage 4a) the null audit balances over, when present."""


def null_audit_selection(rows: pd.DataFrame, n_max: int, seed: int) -> pd.DataFrame:
    """The rows of the null-injection audit: valid null injections with a valid matched control, and those
    controls; one row per host and class (null rows on one host have identical stamps, as do controls
    reusing a host), and in every stratification cell (:data:`NULL_AUDIT_CELL_COLUMNS` present in ``rows``)
    as many null hosts as control hosts — a matched comparison: the two classes have the same mix of cells,
    so only a difference within cells (a leak) moves the AUC. At most ``n_max`` hosts per class.

    ``rows`` needs ``task_id``, ``population`` (2 null injection, 1 control; others ignored), ``control_of``
    (the task a control is matched to), ``galaxy_id`` and ``cutout_ok``. Choices follow xxhash64 of the
    task_id with ``seed``, so they do not depend on row order. Returns ``task_id``, ``population``,
    ``galaxy_id`` of the chosen rows, sorted by population then task_id.
    """
    need = ("task_id", "population", "control_of", "galaxy_id", "cutout_ok")
    missing = [c for c in need if c not in rows.columns]
    if missing:
        raise KeyError(f"null audit: missing column(s) {missing}")
    ok = pd.to_numeric(rows["cutout_ok"], errors="coerce").fillna(0).to_numpy() == 1
    pop = pd.to_numeric(rows["population"], errors="coerce").fillna(-1).to_numpy()
    nulls = rows[ok & (pop == 2)]
    ctrls = rows[ok & (pop == 1) & rows["control_of"].notna().to_numpy()]
    ctrls = ctrls[ctrls["control_of"].isin(set(nulls["task_id"]))]
    nulls = nulls[nulls["task_id"].isin(set(ctrls["control_of"]))]
    cell_cols = [c for c in NULL_AUDIT_CELL_COLUMNS if c in rows.columns]
    cell_of = {t: "|".join(map(str, k)) for t, k in zip(nulls["task_id"], zip(*(nulls[c] for c in cell_cols)))} \
        if cell_cols else {t: "" for t in nulls["task_id"]}
    nulls = nulls.assign(_cell=[cell_of[t] for t in nulls["task_id"]])
    ctrls = ctrls.assign(_cell=[cell_of[t] for t in ctrls["control_of"]])

    def hosts_in_hash_order(df: pd.DataFrame) -> pd.DataFrame:
        h = hash64_array([str(t) for t in df["task_id"]], seed).view(np.uint64) if len(df) else np.zeros(0, np.uint64)
        d = df.assign(_h=h).sort_values(["_h", "task_id"], kind="stable")
        return d.drop_duplicates(["_cell", "galaxy_id"], keep="first")

    n_h, c_h = hosts_in_hash_order(nulls), hosts_in_hash_order(ctrls)
    # a host in two cells (several selection sets) counts once per class
    n_h = n_h.drop_duplicates("galaxy_id", keep="first")
    c_h = c_h.drop_duplicates("galaxy_id", keep="first")
    n_h = n_h.assign(_r=n_h.groupby("_cell").cumcount())
    c_h = c_h.assign(_r=c_h.groupby("_cell").cumcount())
    k = pd.concat([n_h.groupby("_cell").size(), c_h.groupby("_cell").size()], axis=1).fillna(0).min(axis=1)
    n_h = n_h[n_h["_r"] < n_h["_cell"].map(k).fillna(0)]
    c_h = c_h[c_h["_r"] < c_h["_cell"].map(k).fillna(0)]
    if len(n_h) > n_max:   # keep whole ranks across cells, so the cap preserves the balance
        order = n_h.sort_values(["_r", "_h", "task_id"], kind="stable").head(int(n_max))
        keep = order.groupby("_cell").size()
        n_h = order
        c_h = c_h[c_h["_r"] < c_h["_cell"].map(keep).fillna(0)]
    out = pd.concat([n_h, c_h], ignore_index=True)[["task_id", "population", "galaxy_id"]]
    out["population"] = out["population"].astype(np.int64)
    return out.sort_values(["population", "task_id"], kind="stable").reset_index(drop=True)


def _clean(x: ArrayLike) -> np.ndarray:
    v = np.asarray(x, dtype=np.float64).ravel()
    return v[np.isfinite(v)]


def roc_auc(pos: ArrayLike, neg: ArrayLike) -> float:
    """ROC AUC = P(pos > neg) + ½ P(pos = neg) over all pairs (Mann–Whitney U / (n_pos n_neg)).

    NaNs are dropped; NaN if either sample is empty. 1 means larger values flag positives.
    """
    p, q = _clean(pos), _clean(neg)
    if p.size == 0 or q.size == 0:
        return float("nan")
    ranks = stats.rankdata(np.concatenate([p, q]))
    u = ranks[: p.size].sum() - p.size * (p.size + 1) / 2.0
    return float(u / (p.size * q.size))


def bootstrap_auc(
    pos: ArrayLike, neg: ArrayLike, n_boot: int = 1000, seed: int = 0, cl: float = 0.95, chunk: int = 200
) -> tuple[float, float, float]:
    """ROC AUC and its percentile bootstrap interval (positives and negatives resampled separately).

    Deterministic given ``seed`` (a PCG64 stream from :func:`dhs.sampling.hashing.rng_from_seed`).
    Returns (auc, lo, hi); NaNs if either sample is empty.
    """
    p, q = _clean(pos), _clean(neg)
    if p.size == 0 or q.size == 0:
        return float("nan"), float("nan"), float("nan")
    if n_boot < 10 or not (0 < cl < 1):
        raise ValueError(f"need n_boot >= 10 and 0 < cl < 1, got n_boot={n_boot}, cl={cl}")
    auc = roc_auc(p, q)
    qs = np.sort(q)
    left = np.searchsorted(qs, p, side="left")    # negatives strictly below each positive
    right = np.searchsorted(qs, p, side="right")  # negatives at or below
    order = np.argsort(q, kind="stable")
    rng = rng_from_seed(seed)
    aucs = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        wp = rng.multinomial(p.size, np.full(p.size, 1.0 / p.size), size=m).astype(np.float64)
        wq = rng.multinomial(q.size, np.full(q.size, 1.0 / q.size), size=m).astype(np.float64)[:, order]
        cum = np.concatenate([np.zeros((m, 1)), np.cumsum(wq, axis=1)], axis=1)
        below = 0.5 * (cum[:, left] + cum[:, right])  # weighted count of negatives below (ties ½)
        aucs[start:start + m] = np.sum(wp * below, axis=1) / (p.size * q.size)
    a2 = 0.5 * (1 - cl)
    lo, hi = np.quantile(aucs, [a2, 1 - a2])
    return auc, float(lo), float(hi)


def flag_level(separation_lo: float, limit: float = 0.6, red_limit: float = 0.75) -> str:
    """"red" if the separation's lower bound exceeds ``red_limit``, "yellow" if it exceeds ``limit``,
    else "ok" ("n/a" when it is NaN)."""
    if not np.isfinite(separation_lo):
        return "n/a"
    if separation_lo > red_limit:
        return "red"
    if separation_lo > limit:
        return "yellow"
    return "ok"


def shortcut_audit(
    features_pos: Mapping[str, ArrayLike],
    features_neg: Mapping[str, ArrayLike],
    n_boot: int = 1000,
    seed: int = 0,
    cl: float = 0.95,
    limit: float = 0.6,
    red_limit: float = 0.75,
    variants: Mapping[str, str] | None = None,
) -> list[dict]:
    """AUC per feature present in both mappings, with bootstrap interval and flag.

    ``variants`` (feature → ``full`` / ``centre_masked``) adds a ``variant`` field to each result.

    Each result: ``feature``, ``n_pos``, ``n_neg``, ``median_pos``, ``median_neg``, ``auc``, ``auc_lo``,
    ``auc_hi`` (AUC > 0.5 means the feature is larger for positives), ``separation`` = max(AUC, 1 − AUC)
    with ``separation_lo``/``separation_hi``, ``flagged`` (separation_lo > limit) and ``flag``
    ("ok"/"yellow"/"red"). Each feature's bootstrap uses its own seed derived from ``seed`` and its name.
    """
    results = []
    for name in features_pos:
        if name not in features_neg:
            continue
        p, q = _clean(features_pos[name]), _clean(features_neg[name])
        auc, lo, hi = bootstrap_auc(p, q, n_boot=n_boot, seed=stable_hash64(seed, "shortcut_audit", name), cl=cl)
        if np.isfinite(auc) and auc < 0.5:
            sep, s_lo, s_hi = 1 - auc, 1 - hi, 1 - lo
        else:
            sep, s_lo, s_hi = auc, lo, hi
        results.append({
            "feature": name,
            **({"variant": variants.get(name, FULL)} if variants is not None else {}),
            "n_pos": int(p.size),
            "n_neg": int(q.size),
            "median_pos": float(np.median(p)) if p.size else float("nan"),
            "median_neg": float(np.median(q)) if q.size else float("nan"),
            "auc": auc, "auc_lo": lo, "auc_hi": hi,
            "separation": sep, "separation_lo": s_lo, "separation_hi": s_hi,
            "flagged": bool(np.isfinite(s_lo) and s_lo > limit),
            "flag": flag_level(s_lo, limit, red_limit),
        })
    return results
