"""Stamp gallery: Lupton et al. (2004) asinh RGB composites (astropy.visualization.make_lupton_rgb) of
injections across θE with their matched controls beside them."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from astropy.visualization import make_lupton_rgb

from dhs.report.plots import save

__all__ = ["gallery_figure", "lupton_rgb"]


def lupton_rgb(stamp: np.ndarray, stretch: float = 0.5, q: float = 8.0,
               band_scales: Sequence[float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a (3, H, W) g, r, z stamp in nanomaggies: R = z, G = r, B = g (each times its
    entry of ``band_scales``, given in R, G, B order), asinh stretch with ``stretch`` (nanomaggies) and ``q``."""
    a = np.nan_to_num(np.asarray(stamp, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if a.ndim != 3 or a.shape[0] != 3:
        raise ValueError(f"lupton_rgb needs a (3, H, W) g, r, z stamp, got shape {a.shape}")
    sr, sg, sb = (float(s) for s in band_scales)
    # (astropy divides by the summed intensity before masking the pixels where it is <= 0, which are
    # set to black; its 0/0 warning there is expected)
    with np.errstate(invalid="ignore", divide="ignore"):
        return make_lupton_rgb(a[2] * sr, a[1] * sg, a[0] * sb, minimum=0.0, stretch=stretch, Q=q)


def gallery_figure(pairs: Sequence[dict], path: str, stretch: float = 0.5, q: float = 8.0,
                   band_scales: Sequence[float] = (1.0, 1.0, 1.0)) -> str:
    """A 2-row grid, one column per pair sorted by θE: injection on top, its matched control below.

    Each pair: ``theta_e`` (arcsec), ``injection`` ((3, H, W) array), ``control`` (array or None),
    ``label`` (short text under the injection, e.g. its arc SNR), ``control_label``.
    """
    pairs = sorted(pairs, key=lambda p: p["theta_e"])
    n = max(len(pairs), 1)
    fig, axes = plt.subplots(2, n, figsize=(1.9 * n + 0.6, 4.4), squeeze=False)
    fig.subplots_adjust(hspace=0.35, wspace=0.08)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("injection", fontsize=8)
    axes[1, 0].set_ylabel("matched control", fontsize=8)
    if not pairs:
        axes[0, 0].text(0.5, 0.5, "no stamps to show", ha="center", va="center", transform=axes[0, 0].transAxes)
    for i, p in enumerate(pairs):
        axes[0, i].imshow(lupton_rgb(p["injection"], stretch, q, band_scales), origin="lower")
        axes[0, i].set_title(f"θE = {p['theta_e']:.2f}″", fontsize=8)
        axes[0, i].set_xlabel(p.get("label", ""), fontsize=5.5)
        if p.get("control") is not None:
            axes[1, i].imshow(lupton_rgb(p["control"], stretch, q, band_scales), origin="lower")
            axes[1, i].set_xlabel(p.get("control_label", ""), fontsize=5.5)
        else:
            axes[1, i].text(0.5, 0.5, "no matched\ncontrol", ha="center", va="center", fontsize=7,
                            transform=axes[1, i].transAxes)
    fig.suptitle("injections across θE (top) and their matched controls (below); Lupton asinh RGB = z, r, g", fontsize=8)
    return save(fig, path)
