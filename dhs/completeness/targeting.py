"""What stage 4a asked for and stage 4c delivered: the brightness-targeting mix and the resolved share.

Per Arrow batch :func:`injection_summary` counts, over valid injections (``cutout_ok = 1``, not a control,
not a null injection), the targets (``target_snr``) and the achieved r-band SNR (the column named by the
rows' ``target_snr_metric``, else a fallback column) in the same bins, and the injections with
θE / PSF FWHM ≥ a minimum. Batches are summed with :func:`add_summaries`; :func:`mix_table` turns the sums
into the reported table. Pure numpy/pandas, no Spark.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from dhs.completeness.binning import edge_bin_labels
from dhs.completeness.recovery import finite_values

__all__ = ["add_summaries", "bin_counts", "injection_summary", "mix_table", "summary_columns"]

NON_INJECTION_MODELS = ("CONTROL", "NULL")
"""``lens_model`` values that are not injections (controls, null-injection audit rows)."""


def bin_counts(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Counts of finite ``values`` in the open-ended bins of ``edges``: (-inf, e0), [e0, e1), ..., [e_last, inf).

    Returns an int64 array of length ``len(edges) + 1``; NaNs are not counted.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), v, side="right")
    return np.bincount(idx, minlength=len(edges) + 1).astype(np.int64)


def summary_columns(n_edges: int) -> list[str]:
    """Columns of :func:`injection_summary`: ``n_valid``, ``n_resolved``, ``n_targeted``, ``target_<k>``
    and ``achieved_<k>`` for k = 0 … n_edges."""
    k = range(n_edges + 1)
    return ["n_valid", "n_resolved", "n_targeted"] + [f"target_{i}" for i in k] + [f"achieved_{i}" for i in k]


def _injection_mask(df: pd.DataFrame) -> np.ndarray:
    ok = finite_values(df, "cutout_ok") == 1
    if "lens_model" in df.columns:
        ok &= ~df["lens_model"].astype("string").isin(NON_INJECTION_MODELS).fillna(False).to_numpy(bool)
    if "is_control" in df.columns:
        ok &= finite_values(df, "is_control") != 1
    return ok


def injection_summary(df: pd.DataFrame, edges: Sequence[float], fallback_metric: str = "arc_snr",
                      psf_column: str = "psf_fwhm_used_r", theta_e_over_psf_min: float = 1.0) -> pd.DataFrame:
    """One-row table of counts over the valid injections of ``df`` (see :func:`summary_columns`).

    ``n_resolved``: θE / ``psf_column`` ≥ ``theta_e_over_psf_min``. ``n_targeted``: rows with a finite
    ``target_snr``; ``target_<k>``: their targets per bin; ``achieved_<k>``: their measured SNR per bin, the
    SNR being the column each row's ``target_snr_metric`` names (``fallback_metric`` when that is null).
    """
    inj = _injection_mask(df)
    theta = finite_values(df, "theta_e_arcsec") if "theta_e_arcsec" in df.columns else np.full(len(df), np.nan)
    psf = finite_values(df, psf_column) if psf_column in df.columns else np.full(len(df), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        resolved = inj & (psf > 0) & (theta / np.where(psf > 0, psf, 1.0) >= theta_e_over_psf_min)
    target = finite_values(df, "target_snr") if "target_snr" in df.columns else np.full(len(df), np.nan)
    targeted = inj & np.isfinite(target)
    metric = (df["target_snr_metric"].astype("string").fillna(fallback_metric).to_numpy(object)
              if "target_snr_metric" in df.columns else np.full(len(df), fallback_metric, dtype=object))
    achieved = np.full(len(df), np.nan)
    for name in set(metric[targeted].tolist()):
        sel = targeted & (metric == name)
        if name in df.columns:
            achieved[sel] = finite_values(df, name)[sel]
    row = {"n_valid": int(inj.sum()), "n_resolved": int(resolved.sum()), "n_targeted": int(targeted.sum())}
    for prefix, v in (("target", target[targeted]), ("achieved", achieved[targeted])):
        for i, c in enumerate(bin_counts(v, edges)):
            row[f"{prefix}_{i}"] = int(c)
    return pd.DataFrame([row], columns=summary_columns(len(edges))).astype("int64")


def add_summaries(parts: Sequence[pd.DataFrame] | pd.DataFrame) -> dict[str, int]:
    """Sum per-batch :func:`injection_summary` rows into one dict of counts."""
    df = parts if isinstance(parts, pd.DataFrame) else pd.concat(list(parts), ignore_index=True)
    return {c: int(df[c].sum()) for c in df.columns}


def mix_table(summary: dict[str, int], edges: Sequence[float], metric: str) -> pd.DataFrame:
    """Per SNR bin: targets and achieved values (counts and fractions of the targeted injections).

    Columns: ``metric``, ``bin``, ``lo``, ``hi``, ``n_target``, ``frac_target``, ``n_achieved``,
    ``frac_achieved``, ``frac_diff`` (achieved − target). Empty when no injection was targeted or the SNR
    bins are regular (no explicit ``edges``).
    """
    n = summary.get("n_targeted", 0)
    if not n or not len(edges):
        return pd.DataFrame(columns=["metric", "bin", "lo", "hi", "n_target", "frac_target", "n_achieved",
                                     "frac_achieved", "frac_diff"])
    e = [float(x) for x in edges]
    labels = edge_bin_labels(e)
    lo = [-np.inf] + e
    hi = e + [np.inf]
    rows = []
    for k, lab in enumerate(labels):
        t, a = summary.get(f"target_{k}", 0), summary.get(f"achieved_{k}", 0)
        rows.append({"metric": metric, "bin": lab, "lo": lo[k], "hi": hi[k], "n_target": t, "frac_target": t / n,
                     "n_achieved": a, "frac_achieved": a / n, "frac_diff": (a - t) / n})
    return pd.DataFrame(rows)
