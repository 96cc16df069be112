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
