"""Stage-4d report figures (matplotlib, Agg backend, PNG files). Each function writes one PNG and returns
its path; inputs are the tables of :mod:`dhs.completeness.tables`."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

__all__ = ["plot_audit", "plot_completeness_1d", "plot_heatmap", "plot_snr_distributions", "save"]

AXIS_LABELS = {
    "theta_e": "θE bin (lower edge, arcsec)",
    "resolution": "θE / PSF FWHM",
    "resolution_moffat": "θE / psf_fwhm_used_r (Moffat FWHM applied)",
    "resolution_psfsize": "θE / psfsize_r (catalogue PSFSIZE, Gaussian-equivalent FWHM)",
    "bad_pixel": "bad_pixel_frac (fraction of stamp pixels)",
    "wise_brightmask": "wise_brightmask_frac (fraction of stamp pixels)",
    "psf": "PSF FWHM bin (lower edge, arcsec)",
    "depth": "r 5σ depth bin (lower edge, AB mag)",
    "src_mag": "source r mag bin (lower edge, AB mag)",
    "target_snr": "target r-band SNR (stage 4a brightness targeting)",
    "region": "region",
    "split": "split",
}


def save(fig: plt.Figure, path: str) -> str:
    """Write ``fig`` as PNG (dpi 110) and close it."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_completeness_1d(table: pd.DataFrame, dim: str, recovery: str, path: str, title: str = "",
                         rate: str = "completeness", xlabel: str | None = None) -> str:
    """Completeness vs one dimension for the "all", "clean" and "no_fallback" selections (those present),
    with Wilson 68 % (dark) and
    95 % (light) bands. Bins with no valid injections are left out. Regular bins are drawn at their lower
    edge; explicit-edge bins (with an open first bin) at equally spaced, labelled positions shared by both
    selections."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    sel_t = table[(table["surface"] == dim) & (table["recovery"] == recovery) & (table["n_valid"] > 0)]
    bins = sel_t[["bin1", "bin1_lo"]].drop_duplicates().sort_values("bin1_lo", na_position="last")
    numeric = bool(np.all(np.isfinite(bins["bin1_lo"].to_numpy(dtype=float))))
    where = {lab: (lo if numeric else float(i)) for i, (lab, lo) in enumerate(zip(bins["bin1"], bins["bin1_lo"]))}
    for sel, colour in (("all", "C0"), ("clean", "C1"), ("no_fallback", "C2")):
        sub = sel_t[sel_t["selection"] == sel]
        if sub.empty:
            continue
        x = np.array([where[b] for b in sub["bin1"]], dtype=float)
        order = np.argsort(x, kind="stable")
        x, sub = x[order], sub.iloc[order]
        ax.fill_between(x, sub["wilson_lo_95"], sub["wilson_hi_95"], color=colour, alpha=0.12)
        ax.fill_between(x, sub["wilson_lo_68"], sub["wilson_hi_68"], color=colour, alpha=0.3)
        ax.plot(x, sub[rate], "o-", color=colour, label=f"{sel} (n_valid={int(sub['n_valid'].sum())})")
    if not numeric:
        ax.set_xticks(np.arange(len(bins)), [str(b) for b in bins["bin1"]], rotation=30)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(xlabel or AXIS_LABELS.get(dim, dim))
    ax.set_ylabel(rate)
    ax.set_title(title or f"{rate} vs {dim} ({recovery}); bands: Wilson 68 % / 95 %", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, path)


def plot_heatmap(table: pd.DataFrame, surface: str, recovery: str, selection: str, path: str) -> str:
    """2-D completeness map (dim1 rows × dim2 columns), cells annotated with k/n; empty cells blank."""
    sub = table[(table["surface"] == surface) & (table["recovery"] == recovery) & (table["selection"] == selection)]
    sub = sub[sub["n_valid"] > 0]
    fig, ax = plt.subplots(figsize=(6.8, 4.8))
    if sub.empty:
        ax.text(0.5, 0.5, "no valid injections", ha="center", va="center")
        return save(fig, path)
    rows = sorted(sub["bin1_lo"].unique())
    cols = sorted(sub["bin2_lo"].unique())
    grid = np.full((len(rows), len(cols)), np.nan)
    for _, r in sub.iterrows():
        i, j = rows.index(r["bin1_lo"]), cols.index(r["bin2_lo"])
        grid[i, j] = r["completeness"]
        ax.text(j, i, f"{int(r['n_recovered'])}/{int(r['n_valid'])}", ha="center", va="center", fontsize=6,
                color="white" if r["completeness"] < 0.5 else "black")
    im = ax.imshow(grid, origin="lower", vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_yticks(range(len(rows)), [f"{v:g}" for v in rows])
    ax.set_xticks(range(len(cols)), [f"{v:g}" for v in cols], rotation=45)
    d1, d2 = surface.split("_by_", 1) if "_by_" in surface else (surface, "")
    ax.set_ylabel(AXIS_LABELS.get(d1, d1))
    ax.set_xlabel(AXIS_LABELS.get(d2, d2))
    ax.set_title(f"completeness ({recovery}, {selection}); cells: recovered/valid", fontsize=9)
    fig.colorbar(im, ax=ax, label="completeness")
    return save(fig, path)


def plot_snr_distributions(hist: pd.DataFrame, snr_column: str, width_dex: float, path: str) -> str:
    """Step histograms of log10(arc SNR) of valid injections, one line per θE bin (counts normalised)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    h = hist.dropna(subset=["b_theta_e_lo", "snr_log_bin"])
    for i, (theta, sub) in enumerate(sorted(h.groupby("b_theta_e_lo"), key=lambda t: t[0])):
        k = np.round(sub["snr_log_bin"].to_numpy() / width_dex).astype(int)
        n = sub["n"].to_numpy(dtype=float)
        full = np.zeros(k.max() - k.min() + 1)
        np.add.at(full, k - k.min(), n)  # contiguous bins, zeros where a bin is empty
        edges = (k.min() + np.arange(full.size + 1)) * width_dex
        ax.stairs(full / full.sum(), edges, label=f"θE bin {theta:g}″ (n={int(n.sum())})", color=f"C{i % 10}")
    ax.set_xlabel(f"log10({snr_column})")
    ax.set_ylabel("fraction of valid injections")
    ax.set_title(f"{snr_column} distributions by θE bin", fontsize=9)
    ax.grid(alpha=0.3)
    if len(h):
        ax.legend(fontsize=7)
    return save(fig, path)


def plot_audit(rows: Sequence[dict], limit: float, path: str) -> str:
    """Horizontal bars of ROC AUC per feature with the bootstrap interval; dashed lines at 0.5 and at the
    flag limit on both sides (1 − limit and limit)."""
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * max(len(rows), 2) + 1.2))
    colours = {"red": "C3", "yellow": "C1", "ok": "C2", "n/a": "0.6"}
    for i, r in enumerate(rows):
        c = colours.get(r["flag"], "0.5")
        ax.plot([r["auc_lo"], r["auc_hi"]], [i, i], color=c, lw=6, alpha=0.6)
        ax.plot([r["auc"]], [i], "o", color="k", ms=4)
    ax.set_yticks(range(len(rows)), [r["feature"] for r in rows])
    for x in (0.5, limit, 1 - limit):
        ax.axvline(x, ls="--" if x != 0.5 else "-", color="0.4", lw=0.8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("ROC AUC (injections vs controls), bootstrap interval")
    ax.set_title("shortcut audit (red/yellow = flagged)", fontsize=9)
    return save(fig, path)
