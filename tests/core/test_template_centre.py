"""Cells next to the SIE's singular centre, for band-limited (bank-like) templates.

There a cell's source-plane image is a curved arc of the pseudo-caustic, which no Gaussian footprint and no
straight row of taps describes; dhs.core.template_render point-samples those cells instead.  Reference: the
mean of 48 x 48 point samples per cell of lenstronomy's INTERPOL surface at lenstronomy's rays (an
independent implementation of the same bilinear surface and lens), times the cell area.
"""

import numpy as np
import pytest
from lenstronomy.LensModel.lens_model import LensModel
from lenstronomy.LightModel.light_model import LightModel

from dhs.core import InterpolatedSource, SIELens
from dhs.core.render import subpixel_axes
from dhs.core.template_render import band_limited_grid_flux

from ._reference import lens_kwargs

PIX = 0.262
SS = 3
#: cells either side of the lens centre that are compared
REACH = 5


def _smooth_galaxy(rng: np.random.Generator, size: int = 96) -> np.ndarray:
    """An elliptical exponential disc with two Gaussian clumps, smooth on the pixel scale."""
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2.0
    q, phi = rng.uniform(0.4, 0.9), rng.uniform(0, np.pi)
    u = xx * np.cos(phi) + yy * np.sin(phi)
    v = (-xx * np.sin(phi) + yy * np.cos(phi)) / q
    img = np.exp(-np.hypot(u, v) / rng.uniform(6.0, 10.0))
    for _ in range(2):
        cx, cy = rng.uniform(-15, 15, 2)
        img += 0.3 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * rng.uniform(2.0, 4.0) ** 2))
    return img


def _reference_cells(lens: SIELens, src: InterpolatedSource, x1, y1, rows, cols, n: int = 48) -> np.ndarray:
    h = PIX / SS
    pix = src.template_pixscale * src.scale
    kw = [{"image": src.template / src.template.sum() * src.flux / pix**2, "amp": 1.0, "center_x": src.x,
           "center_y": src.y, "phi_G": src.angle, "scale": pix}]
    kl = lens_kwargs(lens.theta_e, lens.e1, lens.e2, lens.gamma1, lens.gamma2)
    sub = (np.arange(n) - 0.5 * (n - 1)) * h / n
    out = np.zeros((rows.size, cols.size))
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            xx, yy = np.meshgrid(float(x1[c]) + sub, float(y1[r]) + sub)
            bx, by = LensModel(["SIE", "SHEAR"]).ray_shooting(xx.ravel(), yy.ravel(), kl)
            out[i, j] = LightModel(["INTERPOL"]).surface_brightness(bx, by, kw).mean() * h * h
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cells_around_the_lens_centre_match_point_sampled_cells(seed):
    """Source behind the lens (an Einstein ring): the 11 x 11 cells around the centre within 3 % of the
    brightest of them each, and their sum within 1 %."""
    rng = np.random.default_rng(seed)
    te = rng.uniform(0.6, 1.6)
    lens = SIELens(te, *rng.uniform(-0.15, 0.15, 2), *rng.uniform(-0.04, 0.04, 2))
    src = InterpolatedSource(_smooth_galaxy(rng), 0.03, 10.0, x=rng.uniform(-0.05, 0.05),
                             y=rng.uniform(-0.05, 0.05), angle=rng.uniform(0, np.pi), scale=rng.uniform(0.6, 1.5))
    assert src.band_limited
    offset = tuple(rng.uniform(-0.5, 0.5, 2))
    x1, y1, _, _, _ = subpixel_axes(32, SS, PIX, offset)
    w = band_limited_grid_flux(lens, src, x1, y1, PIX / SS)
    ic, ir = int(np.abs(x1).argmin()), int(np.abs(y1).argmin())
    rows, cols = np.arange(ir - REACH, ir + REACH + 1), np.arange(ic - REACH, ic + REACH + 1)
    ref = _reference_cells(lens, src, x1, y1, rows, cols)
    got = w[np.ix_(rows, cols)]
    assert np.abs(got - ref).max() <= 0.03 * ref.max(), np.abs(got - ref).max() / ref.max()
    assert got.sum() == pytest.approx(ref.sum(), rel=0.01)
