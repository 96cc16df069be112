"""Synthetic templates whose light sits in one or a few template pixels (sharper than any real galaxy
cut-out), shared by the anti-aliasing and INTERPOL comparison tests."""

import numpy as np


def sharp_templates() -> dict[str, np.ndarray]:
    """A single bright pixel, a 2x2 block and Gaussians of sigma 0.5 and 0.7 pixels, each on a zero border."""
    single = np.zeros((9, 9))
    single[4, 4] = 1.0
    block = np.zeros((8, 8))
    block[3:5, 3:5] = 1.0
    yy, xx = np.mgrid[:15, :15] - 7.0
    return {
        "single_pixel": single,
        "block_2x2": block,
        "gauss0.5": np.exp(-(xx**2 + yy**2) / (2 * 0.5**2)),
        "gauss0.7": np.exp(-(xx**2 + yy**2) / (2 * 0.7**2)),
    }


def lensed_template_case(
    rng: np.random.Generator,
    tpl: np.ndarray,
    pixscale: tuple[float, float],
    *,
    theta_e: tuple[float, float] = (0.8, 1.6),
    shear: float = 0.05,
    offset: tuple[float, float] = (0.0, 0.3),
    flux: float = 5.0,
):
    """A random SIE + shear lens (ellipticity components within 0.2, shear components within ``shear``)
    and ``tpl`` as an InterpolatedSource with a pixel drawn from ``pixscale`` (arcsec), at a distance of
    ``offset`` x theta_E from the lens centre in a random direction, at a random angle."""
    from dhs.core import InterpolatedSource, SIELens

    te = rng.uniform(*theta_e)
    lens = SIELens(te, *rng.uniform(-0.2, 0.2, 2), *rng.uniform(-shear, shear, 2))
    r, a = rng.uniform(*offset) * te, rng.uniform(0.0, 2 * np.pi)
    src = InterpolatedSource(
        tpl, rng.uniform(*pixscale), flux, x=r * np.cos(a), y=r * np.sin(a), angle=rng.uniform(0, 2 * np.pi)
    )
    return lens, src
