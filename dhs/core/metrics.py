"""Arc metrics: signal-to-noise (docs/outputs.md), magnification, injected flux, half-light radius."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from .lens import SIELens
from .outside_flux import image_plane_half_width
from .render import lensed_grid_flux
from .source_profile import SourceProfile

__all__ = [
    "SNR_METRICS",
    "arc_snr_metrics",
    "lensed_half_light_radius",
    "lensed_total_flux",
    "magnification",
    "total_injected_flux",
]

#: fraction of the arc's own maximum that defines its footprint for arc_snr_sum_footprint
FOOTPRINT_FRACTION = 0.10

#: the metrics returned by :func:`arc_snr_metrics` (all scale linearly with the arc's flux)
SNR_METRICS: tuple[str, ...] = ("arc_snr", "arc_snr_sum", "arc_snr_sum_footprint", "arc_snr_opt")


def arc_snr_metrics(arc: np.ndarray, invvar: np.ndarray, good: np.ndarray) -> dict[str, float | None]:
    """Signal-to-noise of an injected arc in one band (definitions in docs/outputs.md).

    Args:
        arc: (H, W) noiseless arc image, nanomaggies per pixel.
        invvar: (H, W) inverse variance of the coadd, 1/nanomaggy^2.
        good: (H, W) boolean mask of usable pixels (e.g. no bad maskbits); pixels with invvar <= 0
            or non-finite values are never used.

    Returns:
        dict with (``s`` the arc, ``sigma = 1/sqrt(invvar)``, sums over the usable pixels)
        ``arc_snr``: peak per-pixel SNR, max over usable pixels of s / sigma;
        ``arc_snr_sum``: integrated SNR as the seed system defined it, sum(s) / sqrt(sum(sigma^2)) over
        every usable pixel of the stamp (it falls as the stamp grows: the noise of arc-free pixels counts);
        ``arc_snr_sum_footprint``: the same ratio over the arc's footprint only, the usable pixels with
        s >= 10 % of the arc's own maximum (the maximum over the whole stamp); it does not depend on the
        stamp size;
        ``arc_snr_opt``: matched-filter SNR sqrt(sum(s^2 / sigma^2)) over usable pixels.
        All are None when no usable pixel carries arc flux (s > 0). All are dimensionless and proportional
        to the arc's flux.
    """
    arc = np.asarray(arc, dtype=np.float64)
    invvar = np.asarray(invvar, dtype=np.float64)
    good = np.asarray(good, dtype=bool)
    if arc.shape != invvar.shape or arc.shape != good.shape:
        raise ValueError(
            f"arc_snr_metrics: arc {arc.shape}, invvar {invvar.shape} and good {good.shape} must have one shape"
        )
    usable = good & (invvar > 0)
    if not np.isfinite(invvar).all():  # (+inf passes invvar > 0)
        usable &= np.isfinite(invvar)
    finite = np.isfinite(arc)
    all_finite = bool(finite.all())
    if not all_finite:
        usable &= finite
    carrying = usable & (arc > 0)
    none: dict[str, float | None] = dict.fromkeys(SNR_METRICS)
    if not carrying.any():
        return none
    s = arc[carrying]
    iv = invvar[carrying]
    out: dict[str, float | None] = {
        "arc_snr": float(np.max(s * np.sqrt(iv))),
        "arc_snr_sum": float(np.sum(arc[usable]) / math.sqrt(np.sum(1.0 / invvar[usable]))),
        "arc_snr_sum_footprint": None,
        "arc_snr_opt": float(math.sqrt(np.sum(s * s * iv))),
    }
    peak = float(arc.max() if all_finite else np.max(np.where(finite, arc, -np.inf)))
    foot = carrying & (arc >= FOOTPRINT_FRACTION * peak)
    if foot.any():
        out["arc_snr_sum_footprint"] = float(np.sum(arc[foot]) / math.sqrt(np.sum(1.0 / invvar[foot])))
    return out


def total_injected_flux(arcs: np.ndarray) -> np.ndarray:
    """Total flux (nanomaggies) of each band of an (n_bands, H, W) or (H, W) arc image inside the stamp."""
    arcs = np.asarray(arcs, dtype=np.float64)
    return arcs.sum(axis=(-2, -1))


@functools.lru_cache(maxsize=8)
def _pixel_centres(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Flat (columns, rows) pixel coordinates of an image of ``shape``, read-only float64."""
    rows, cols = np.indices(shape, dtype=np.float64)
    cols, rows = cols.reshape(-1), rows.reshape(-1)
    cols.setflags(write=False)
    rows.setflags(write=False)
    return cols, rows


def lensed_half_light_radius(arc: np.ndarray, pixscale: float, centre_pix: Sequence[float]) -> float:
    """Radius (arcsec) around ``centre_pix`` of the circle holding half of the arc's flux in the stamp.

    Args:
        arc: (H, W) arc image (nanomaggies per pixel, non-negative in practice).
        pixscale: arcsec per pixel.
        centre_pix: (col, row) pixel coordinates of the centre, e.g. the lens centre
            (size//2 + offset_pix[0], size//2 + offset_pix[1]).

    Returns:
        The half-light radius in arcsec: pixels are taken in order of the distance of their centres (ties
        in index order), and the radius is interpolated linearly in their cumulative flux between the
        first pixel at which it reaches half the total and the pixel before; NaN when the arc has no
        positive total flux.
    """
    arc = np.asarray(arc, dtype=np.float64)
    if arc.ndim != 2:
        raise ValueError(f"lensed_half_light_radius: arc must be 2-D, got shape {arc.shape}")
    total = float(arc.sum())
    if not (math.isfinite(total) and total > 0):
        return float("nan")
    half = 0.5 * total
    cols, rows = _pixel_centres(arc.shape)
    r = np.hypot(cols - float(centre_pix[0]), rows - float(centre_pix[1]))
    flux = arc.reshape(-1)
    # whole-pixel rings first (no sort of the whole stamp), then the pixels of the ring where half the
    # flux is reached, in order of distance
    ring = r.astype(np.intp)  # (floor: r >= 0)
    cum_ring = np.cumsum(np.bincount(ring, weights=flux))
    j = min(int(np.argmax(cum_ring >= half)), cum_ring.size - 1)
    before = float(cum_ring[j - 1]) if j > 0 else 0.0
    members = np.flatnonzero(ring == j)
    order = members[np.argsort(r[members], kind="stable")]
    cum = before + np.cumsum(flux[order])
    reached = cum >= half
    k = int(np.argmax(reached)) if reached.any() else cum.size - 1
    r_k = float(r[order[k]])
    if k > 0:
        r_prev, c_prev = float(r[order[k - 1]]), float(cum[k - 1])
    else:
        inner = ring < j
        if not inner.any():
            return r_k * pixscale
        r_prev = float(r[inner].max())  # (the last pixel of the inner rings; its cumulative flux: before)
        c_prev = before
    c_k = float(cum[k])
    frac = (half - c_prev) / (c_k - c_prev) if c_k > c_prev else 0.0
    return (r_prev + frac * (r_k - r_prev)) * pixscale


def lensed_total_flux(lens: SIELens, source: SourceProfile, *, n_base: int = 128) -> float:
    """Total lensed flux (nanomaggies) of ``source`` over the whole image plane (not limited by a stamp).

    The integral runs over a lens-centred square that holds every image of the source's 99.9 %
    isophote, on an n_base x n_base grid refined adaptively where the source is under-resolved.
    """
    half = image_plane_half_width(lens, source)
    h = 2.0 * half / n_base
    centres = ((np.arange(n_base) + 0.5) * h - half).astype(np.float32)
    # (refined at least as finely as a stamp rendered at the default supersampling: refine_levels)
    return float(lensed_grid_flux(lens, source, centres, centres, h).sum(dtype=np.float64))


def magnification(lens: SIELens, source: SourceProfile, *, n_base: int = 128) -> float:
    """Total magnification: lensed / unlensed total flux of the source, not limited by any stamp.

    The unlensed flux is the analytic total (``source.flux``); the lensed flux is integrated over the
    whole region where images can form (see lensed_total_flux).  Accuracy ~0.3 % (the light outside
    the 99.9 % isophote is not followed).  Returns exactly 1.0 when the lens has no mass and no shear.
    """
    if lens.theta_e == 0.0 and lens.gamma1 == 0.0 and lens.gamma2 == 0.0:
        return 1.0
    unit = source.with_flux(1.0)
    return lensed_total_flux(lens, unit, n_base=n_base)
