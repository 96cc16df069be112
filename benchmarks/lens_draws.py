"""Random lenses for the rendering benchmarks (shared by bench_render.py and cosmos_render.py)."""

from __future__ import annotations

import math

import numpy as np


def draw_lens_and_source_position(rng: np.random.Generator, theta_e_range: tuple[float, float], e_max: float,
                                  shear_max: float = 0.08) -> tuple[object, float, float, float]:
    """An SIE + external shear lens (θE uniform in ``theta_e_range`` arcsec, |e| ≤ ``e_max``, |γ| ≤
    ``shear_max``, uniform angles) and a source position uniform over the disc of radius 0.6 θE (arcsec).
    Returns (lens, θE, x, y); the draws are made in this order: θE, |e|, φe, |γ|, φγ, radius, angle."""
    from dhs.core import SIELens

    te = rng.uniform(*theta_e_range)
    em, ep = rng.uniform(0, e_max), rng.uniform(0, math.pi)
    gm, gp = rng.uniform(0, shear_max), rng.uniform(0, math.pi)
    lens = SIELens(te, em * math.cos(2 * ep), em * math.sin(2 * ep), gm * math.cos(2 * gp), gm * math.sin(2 * gp))
    r, a = 0.6 * te * math.sqrt(rng.uniform()), rng.uniform(0, 2 * math.pi)
    return lens, te, r * math.cos(a), r * math.sin(a)
