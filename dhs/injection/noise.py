"""Optional Poisson noise of the injected arc (``stage4c.arc_noise: poisson``).

A real arc would have added its own photon noise to the coadd.  The coadd does not store a gain, so it is
estimated per pixel from the coadd's inverse variance and the sky brightness:

* Legacy Surveys coadd images are sky-subtracted and their ``invvar`` describes the sky (+ read) noise of
  the stacked exposures only — the shot noise of sources is not in it (the host's own pixels have the same
  invvar as the sky around them).  For a sky-limited pixel the variance is B/G, where B is the sky level in
  nanomaggies per pixel and G the effective gain in photo-electrons per nanomaggy summed over the stacked
  exposures.  Hence the estimate ``G = B · invvar`` (per pixel, per band).  The image itself cannot give B
  (its sky has been subtracted), so B comes from the nominal sky surface brightness per band
  (``stage4c.sky_mag_arcsec2``, AB mag/arcsec²): B = 10^(−0.4(μ − 22.5)) · pixscale².  The image pixels are
  used only to check that there is data (invvar > 0); where invvar = 0 no noise is added.
* The arc's expected electron count in a pixel is λ = G·max(arc, 0); the noisy arc is
  arc + (Poisson(λ) − λ)/G, whose mean is the arc and whose extra variance is arc/G (nanomaggy²).

A brighter sky or a deeper stack means a larger G and relatively less arc shot noise, as it should.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def sky_level_per_pixel(sky_mag_arcsec2: float, pixscale: float = 0.262) -> float:
    """Sky level (nanomaggies per pixel) for a surface brightness in AB mag/arcsec² and pixel scale (″)."""
    return float(10.0 ** (-0.4 * (float(sky_mag_arcsec2) - 22.5)) * pixscale * pixscale)


def effective_gain(invvar: np.ndarray, sky_level: float) -> np.ndarray:
    """Per-pixel effective gain (electrons per nanomaggy): sky level (nanomaggy/pixel) × invvar (1/nanomaggy²).

    Zero where invvar ≤ 0 or not finite (no data: no noise can be assigned)."""
    iv = np.asarray(invvar, dtype=np.float64)
    g = np.where(np.isfinite(iv) & (iv > 0), iv, 0.0) * float(sky_level)
    return g


def poisson_arc(arc: np.ndarray, invvar: np.ndarray, sky_levels: Sequence[float],
                rng: np.random.Generator) -> np.ndarray:
    """Add photon noise to a noiseless arc.

    Parameters
    ----------
    arc : (nb, H, W) noiseless arc, nanomaggies per pixel.
    invvar : (nb, H, W) coadd inverse variance, 1/nanomaggy².
    sky_levels : (nb,) sky level per band, nanomaggies per pixel (:func:`sky_level_per_pixel`).
    rng : generator derived from the task seed.

    Returns
    -------
    (nb, H, W) float64 noisy arc (mean = arc); pixels with invvar ≤ 0 are returned unchanged.
    """
    arc = np.asarray(arc, dtype=np.float64)
    out = arc.copy()
    for b in range(arc.shape[0]):
        gain = effective_gain(invvar[b], sky_levels[b])
        lam = gain * np.clip(arc[b], 0.0, None)
        use = (gain > 0) & (lam > 0)
        if not use.any():
            continue
        counts = rng.poisson(lam[use]).astype(np.float64)
        out[b][use] = arc[b][use] + (counts - lam[use]) / gain[use]
    return out
