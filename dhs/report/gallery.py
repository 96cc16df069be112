"""Stamp gallery: Lupton et al. (2004) asinh RGB composites (:func:`astropy.visualization.make_lupton_rgb`).

One column per example, sorted by θE: the injected stamp (host + arc), the arc alone, and a matched control
(an unlensed host of the same PSF and depth bin); the stamp and its control share a stretch.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from astropy.visualization import make_lupton_rgb

from dhs.report.plots import save

__all__ = ["ROW_LABELS", "auto_stretch", "centre_crop", "gallery_figure", "image_stretch", "lupton_rgb"]

#: Row titles of the gallery, top to bottom.
ROW_LABELS = ("injected stamp\n(host + arc)", "arc alone", "matched control\n(no arc)")


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


def centre_crop(stamp: np.ndarray, size: int | None) -> np.ndarray:
    """The central ``size`` × ``size`` pixels of a (bands, H, W) stamp (the whole stamp when ``size`` is None
    or not smaller)."""
    a = np.asarray(stamp)
    if size is None or size >= min(a.shape[-2:]):
        return a
    y0 = (a.shape[-2] - size) // 2
    x0 = (a.shape[-1] - size) // 2
    return a[..., y0:y0 + size, x0:x0 + size]


def auto_stretch(arc: np.ndarray | None, fallback: float = 0.5) -> float:
    """Half the brightest pixel of ``arc`` over its bands (nanomaggies): the stretch that shows an arc of any
    brightness alike; ``fallback`` when there is no arc or it is empty."""
    if arc is None:
        return fallback
    peak = float(np.nanmax(arc)) if np.size(arc) else 0.0
    return 0.5 * peak if np.isfinite(peak) and peak > 0 else fallback


def image_stretch(stamp: np.ndarray, arc: np.ndarray | None, fallback: float = 0.5) -> float:
    """Stretch (nanomaggies) of an injected stamp and its control: the arc's (:func:`auto_stretch`), but never
    below twice the stamp's r-band pixel noise (1.4826 × MAD), so that a faint arc does not turn the sky
    noise into full-scale colour."""
    r = np.asarray(stamp, dtype=np.float64)[1]
    r = r[np.isfinite(r)]
    noise = 1.4826 * float(np.median(np.abs(r - np.median(r)))) if r.size else 0.0
    return max(auto_stretch(arc, fallback), 2.0 * noise)


def gallery_figure(examples: Sequence[dict], path: str, stretch: float | None = None, q: float = 8.0,
                   band_scales: Sequence[float] = (1.0, 1.0, 1.0), crop_pix: int | None = None) -> str:
    """Write the gallery PNG: one column per example sorted by θE, rows as in :data:`ROW_LABELS`.

    Each example: ``theta_e`` (arcsec), ``injection`` ((3, H, W) array, nanomaggies), ``arc`` (array or None
    when stage 4c did not keep it), ``control`` (array or None), ``label`` (text under the injection, e.g.
    its arc SNR). ``stretch`` None: per example, :func:`image_stretch` for the injected stamp and its control
    and :func:`auto_stretch` for the arc alone.
    """
    examples = sorted(examples, key=lambda p: p["theta_e"])
    n = max(len(examples), 1)
    fig, axes = plt.subplots(3, n, figsize=(1.6 * n + 1.0, 5.6), squeeze=False)
    fig.subplots_adjust(hspace=0.28, wspace=0.06)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for row, label in enumerate(ROW_LABELS):
        axes[row, 0].set_ylabel(label, fontsize=8)
    if not examples:
        axes[0, 0].text(0.5, 0.5, "no stamps to show", ha="center", va="center", transform=axes[0, 0].transAxes)
    for i, ex in enumerate(examples):
        s_img = stretch if stretch is not None else image_stretch(ex["injection"], ex.get("arc"))
        s_arc = stretch if stretch is not None else auto_stretch(ex.get("arc"))
        panels = (ex["injection"], ex.get("arc"), ex.get("control"))
        missing = ("", "arc not kept\n(stage4c.keep_arrays)", "no matched\ncontrol")
        for row, (img, why) in enumerate(zip(panels, missing)):
            s = s_arc if row == 1 else s_img
            ax = axes[row, i]
            if img is None:
                ax.text(0.5, 0.5, why, ha="center", va="center", fontsize=6.5, transform=ax.transAxes)
                continue
            ax.imshow(lupton_rgb(centre_crop(img, crop_pix), s, q, band_scales), origin="lower")
        axes[0, i].set_title(f"θE = {ex['theta_e']:.2f}″", fontsize=8)
        axes[0, i].set_xlabel(ex.get("label", ""), fontsize=6.5)
    shown = "" if crop_pix is None else f"central {crop_pix}×{crop_pix} pixels ({crop_pix * 0.262:.1f}″), "
    fig.suptitle(f"Injections across θE: {shown}Lupton asinh RGB = z, r, g; injected stamp and control share "
                 "a stretch, the arc alone is stretched to its own peak", fontsize=8)
    return save(fig, path)
