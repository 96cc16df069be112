"""Source profiles: Sersic normalisation and geometry (vs lenstronomy and analytic), interpolated images."""

import math

import numpy as np
import pytest
from scipy import special

from dhs.core import InterpolatedSource, SersicSource
from dhs.core.sources import sersic_b_n

from ._reference import lenstronomy_sersic_kwargs


@pytest.mark.parametrize("n", [0.5, 1.0, 2.0, 4.0, 6.0])
def test_b_n_is_exact(n):
    b = sersic_b_n(n)
    assert special.gammainc(2 * n, b) == pytest.approx(0.5, abs=1e-12)


def _grid(half, step):
    x = (np.arange(-int(half / step), int(half / step)) + 0.5) * step
    return np.meshgrid(x, x)


@pytest.mark.parametrize("n", [0.5, 1.0, 4.0])
@pytest.mark.parametrize("e", [(0.0, 0.0), (0.3, -0.2)])
def test_half_light_isophote_encloses_half_the_flux(n, e):
    """Numerical integration on a fine grid (independent of the analytic normalisation)."""
    src = SersicSource(5.0, 0.5, n=n, e1=e[0], e2=e[1], x=0.02, y=-0.03)
    step = 0.005
    xx, yy = _grid(3.2, step)  # holds the R = 2 r_eff isophote (semi-major axis <= 2 * 0.5 / sqrt(q) < 3.2")
    sb = src.surface_brightness(xx, yy)
    # lenstronomy's elliptical radius, computed here from phi and q (not from e1, e2 directly)
    phi = 0.5 * math.atan2(e[1], e[0])
    c = math.hypot(*e)
    q = (1 - c) / (1 + c)
    dx, dy = xx - 0.02, yy + 0.03
    xp = dx * math.cos(phi) + dy * math.sin(phi)
    yp = -dx * math.sin(phi) + dy * math.cos(phi)
    r_ell = np.sqrt(q * xp**2 + yp**2 / q)
    tol = 3e-3 if n == 4.0 else 1e-3
    assert sb[r_ell < 0.5].sum() * step**2 == pytest.approx(2.5, rel=tol)
    # and the analytic normalisation: flux inside R = 4 r_eff from the incomplete gamma function
    expected = 5.0 * special.gammainc(2 * n, sersic_b_n(n) * 4.0 ** (1 / n))
    assert sb[r_ell < 2.0].sum() * step**2 == pytest.approx(expected, rel=tol)


@pytest.mark.parametrize(
    "n,r_eff,e1,e2",
    [(0.5, 0.3, 0.0, 0.0), (1.0, 0.2, 0.3, -0.1), (2.7, 0.6, -0.2, 0.25), (4.0, 0.1, 0.1, 0.4)],
)
def test_surface_brightness_matches_lenstronomy_sersic_ellipse(n, r_eff, e1, e2):
    """Same geometry and normalisation as lenstronomy SERSIC_ELLIPSE once its approximate b_n is rescaled."""
    src = SersicSource(3.0, r_eff, n=n, e1=e1, e2=e2, x=0.1, y=-0.2)
    light, kw = lenstronomy_sersic_kwargs(3.0, r_eff, n, e1, e2, 0.1, -0.2)
    rng = np.random.default_rng(3)
    x, y = rng.uniform(-2, 2, 500), rng.uniform(-2, 2, 500)
    np.testing.assert_allclose(src.surface_brightness(x, y), light.surface_brightness(x, y, kw), rtol=1e-9)


def test_float32_surface_brightness_stays_float32():
    src = SersicSource(3.0, 0.3, n=1.5, e1=0.1)
    x = np.linspace(-1, 1, 101, dtype=np.float32)
    out = src.surface_brightness(x, x[::-1].copy())
    assert out.dtype == np.float32
    np.testing.assert_allclose(
        out, src.surface_brightness(x.astype(np.float64), x[::-1].astype(np.float64)), rtol=2e-5
    )


def test_with_flux_and_validation():
    src = SersicSource(3.0, 0.3)
    assert src.with_flux(7.0).flux == 7.0 and src.with_flux(7.0).r_eff == 0.3
    with pytest.raises(ValueError, match="r_eff"):
        SersicSource(1.0, 0.0)
    with pytest.raises(ValueError, match="flux"):
        SersicSource(-1.0, 0.3)
    with pytest.raises(ValueError, match="n must be"):
        SersicSource(1.0, 0.3, n=20)
    with pytest.raises(ValueError, match="template_pixscale"):
        InterpolatedSource(np.ones((4, 4)), 0.0, 1.0)
    with pytest.raises(ValueError, match="positive sum"):
        InterpolatedSource(np.zeros((4, 4)), 0.03, 1.0)
    with pytest.raises(ValueError, match="NaN"):
        InterpolatedSource(np.full((4, 4), np.nan), 0.03, 1.0)


@pytest.mark.parametrize("scale,angle,tps", [(1.0, 0.0, 0.03), (2.5, 0.7, 0.03), (0.6, -2.0, 0.1)])
def test_interpolated_surface_brightness_integrates_to_flux(scale, angle, tps):
    rng = np.random.default_rng(5)
    tpl = rng.uniform(0, 1, (31, 24)) * np.outer(np.hanning(31), np.hanning(24))
    src = InterpolatedSource(tpl * 1e3, tps, 4.0, x=0.05, y=-0.02, angle=angle, scale=scale)
    pix = tps * scale
    step = pix / 7.0
    xx, yy = _grid(0.6 * 40 * pix, step)
    assert src.surface_brightness(xx, yy).sum() * step**2 == pytest.approx(4.0, rel=2e-3)


def test_interpolated_rotation_is_counter_clockwise():
    tpl = np.zeros((21, 21))
    tpl[10, 15] = 1.0  # a blob on the +x side of the centre (column 15 > 10)
    src = InterpolatedSource(tpl, 0.1, 1.0, angle=math.pi / 2)
    # after a +90 degree (counter-clockwise) rotation the blob sits on the +y side
    assert src.surface_brightness(np.array([0.0]), np.array([0.5]))[0] > 0
    assert src.surface_brightness(np.array([0.5]), np.array([0.0]))[0] == 0


def test_scalar_positions_give_scalars():
    src = SersicSource(3.0, 0.4, n=2.0, e1=0.1, e2=-0.2, x=0.05, y=-0.1)
    xs, ys = np.array([0.3, -0.2]), np.array([0.1, 0.4])
    arr = src.surface_brightness(xs, ys)
    for i in range(2):
        value = src.surface_brightness(float(xs[i]), float(ys[i]))
        assert np.ndim(value) == 0
        assert value == pytest.approx(arr[i], rel=1e-12)
        assert src.needs_refinement(float(xs[i]), float(ys[i]), 0.1) == bool(
            src.needs_refinement(xs, ys, 0.1)[i]
        )
    sb, flag = src.evaluate(0.3, 0.1, 0.1, 0.2)
    assert sb == pytest.approx(arr[0], rel=1e-12) and isinstance(flag, bool)
