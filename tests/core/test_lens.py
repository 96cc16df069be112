"""SIE + shear deflection against lenstronomy, and its behaviour at the centre and for round lenses."""

import numpy as np
import pytest

from dhs.core import SIELens, sie_shear_deflection
from dhs.core.lens import max_sie_deflection

from ._reference import _LENS, lens_kwargs


def _random_points(rng, n, log_r_min=-12.0):
    # out to 5", and near the centre down to 10**log_r_min arcsec (1e-12": inside lenstronomy's 1e-10" core,
    # which dhs shares), plus the centre itself and points on the axes
    r = np.concatenate([rng.uniform(1e-3, 5.0, n - 80), 10.0 ** rng.uniform(log_r_min, -1, 80)])
    phi = rng.uniform(0, 2 * np.pi, n)
    x, y = r * np.cos(phi), r * np.sin(phi)
    x[:4], y[:4] = [0.0, 1e-11, 0.0, -0.5], [0.0, 0.0, -1e-11, 0.0]
    return x, y


def test_deflection_matches_lenstronomy_to_1e6():
    rng = np.random.default_rng(1)
    worst = 0.0
    for _ in range(200):
        theta_e = rng.uniform(0.2, 3.0)
        emag, ephi = rng.uniform(0, 0.5), rng.uniform(0, np.pi)
        e1, e2 = emag * np.cos(2 * ephi), emag * np.sin(2 * ephi)
        gmag, gphi = rng.uniform(0, 0.15), rng.uniform(0, np.pi)
        g1, g2 = gmag * np.cos(2 * gphi), gmag * np.sin(2 * gphi)
        x, y = _random_points(rng, 400)
        ax, ay = sie_shear_deflection(x, y, theta_e, e1, e2, g1, g2)
        rx, ry = _LENS.alpha(x, y, lens_kwargs(theta_e, e1, e2, g1, g2))
        # relative to the deflection's scale (theta_E): near the centre the cored deflection tends to 0
        scale = np.maximum(np.hypot(rx, ry), theta_e)
        err = np.hypot(ax - rx, ay - ry) / scale
        worst = max(worst, float(err.max()))
    assert worst <= 1e-6, worst


def test_float32_path_stays_float32_and_accurate():
    rng = np.random.default_rng(2)
    # (float32 takes the core into account only through psi, which is exact wherever 1e-10" / r is below
    # float32 resolution: r >= 1e-3" here; the renderer's rays never come closer except at the centre itself)
    x, y = _random_points(rng, 1000, log_r_min=-3.0)
    x[1], y[2] = 0.5, 0.5  # (no points at 1e-11")
    a64 = sie_shear_deflection(x, y, 1.3, 0.2, -0.1, 0.05, 0.02)
    a32 = sie_shear_deflection(x.astype(np.float32), y.astype(np.float32), 1.3, 0.2, -0.1, 0.05, 0.02)
    assert a32[0].dtype == np.float32 and a32[1].dtype == np.float32
    assert np.max(np.abs(a32[0] - a64[0])) < 2e-5 * 1.3
    assert np.max(np.abs(a32[1] - a64[1])) < 2e-5 * 1.3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("e", [(0.0, 0.0), (1e-12, 0.0), (1e-7, 3e-8), (0.3, -0.2)])
def test_finite_at_centre_and_round_limit(dtype, e):
    x = np.array([0.0, 1e-30, 0.5, -1.0, 0.0], dtype=dtype)
    y = np.array([0.0, 0.0, 0.5, 0.0, 2.0], dtype=dtype)
    ax, ay = sie_shear_deflection(x, y, 1.0, e[0], e[1], 0.05, -0.03)
    assert np.all(np.isfinite(ax)) and np.all(np.isfinite(ay))
    assert ax[0] == 0.0 and ay[0] == 0.0


def test_round_limit_is_continuous_and_is_the_sis():
    x = np.array([0.7, -1.2, 0.1])
    y = np.array([0.3, 0.4, -2.0])
    ax0, ay0 = sie_shear_deflection(x, y, 1.5, 0.0, 0.0)
    r = np.hypot(x, y)
    # (the 1e-10" core changes the SIS by ~1e-10 / r relative)
    np.testing.assert_allclose(ax0, 1.5 * x / r, rtol=1e-9)
    np.testing.assert_allclose(ay0, 1.5 * y / r, rtol=1e-9)
    # inside the core: lenstronomy's cored isothermal, b x / (sqrt(r^2 + s^2) + s)
    ax_c, ay_c = sie_shear_deflection(np.array([3e-11]), np.array([-4e-11]), 1.5, 0.0, 0.0)
    denom = np.hypot(5e-11, 1e-10) + 1e-10
    np.testing.assert_allclose([ax_c[0], ay_c[0]], 1.5 * np.array([3e-11, -4e-11]) / denom, rtol=1e-9)
    ax1, ay1 = sie_shear_deflection(x, y, 1.5, 1e-7, 0.0)
    np.testing.assert_allclose(ax1, ax0, rtol=1e-6)
    np.testing.assert_allclose(ay1, ay0, rtol=1e-6)


def test_einstein_radius_normalisation():
    """Mean convergence 1 inside the iso-density ellipse of area pi theta_E^2 (divergence theorem:
    the outward flux of alpha through that ellipse is 2 pi theta_E^2), for round and elliptical lenses."""
    theta_e = 1.2
    t = (np.arange(40000) + 0.5) / 40000 * 2 * np.pi
    for e1, e2 in [(0.0, 0.0), (0.3, 0.1), (-0.2, 0.35)]:
        phi = 0.5 * np.arctan2(e2, e1)
        c = np.hypot(e1, e2)
        q = (1 - c) / (1 + c)
        xp, yp = theta_e * np.cos(t) / np.sqrt(q), theta_e * np.sqrt(q) * np.sin(t)
        x = xp * np.cos(phi) - yp * np.sin(phi)
        y = xp * np.sin(phi) + yp * np.cos(phi)
        dxdt = -theta_e * np.sin(t) / np.sqrt(q) * np.cos(phi) - theta_e * np.sqrt(q) * np.cos(t) * np.sin(
            phi
        )
        dydt = -theta_e * np.sin(t) / np.sqrt(q) * np.sin(phi) + theta_e * np.sqrt(q) * np.cos(t) * np.cos(
            phi
        )
        ax, ay = sie_shear_deflection(x, y, theta_e, e1, e2)
        flux = np.sum(ax * dydt - ay * dxdt) * (2 * np.pi / t.size)
        assert flux == pytest.approx(2 * np.pi * theta_e**2, rel=1e-6)


def test_shear_convention():
    ax, ay = sie_shear_deflection(np.array([2.0]), np.array([3.0]), 0.0, 0.0, 0.0, 0.1, -0.05)
    assert ax[0] == pytest.approx(0.1 * 2.0 - 0.05 * 3.0)
    assert ay[0] == pytest.approx(-0.05 * 2.0 - 0.1 * 3.0)


def test_lens_validation_names_the_field():
    with pytest.raises(ValueError, match="theta_e"):
        SIELens(-1.0)
    with pytest.raises(ValueError, match="ellipticity"):
        SIELens(1.0, 0.8, 0.8)
    with pytest.raises(ValueError, match="gamma1"):
        SIELens(1.0, gamma1=float("nan"))


def test_scalar_and_broadcast_inputs_match_lenstronomy():
    """Scalars give scalars, (n,) against a scalar broadcasts, 2-D grids keep their shape."""
    kw = (1.3, 0.12, -0.07, 0.04, 0.02)
    ref = _LENS.alpha(0.7, -0.4, lens_kwargs(*kw))
    ax, ay = sie_shear_deflection(0.7, -0.4, *kw)
    assert np.ndim(ax) == 0 and np.ndim(ay) == 0
    np.testing.assert_allclose([ax, ay], ref, rtol=1e-9)
    bx, by = SIELens(*kw).ray_shoot(0.7, -0.4)
    np.testing.assert_allclose([bx, by], [0.7 - ref[0], -0.4 - ref[1]], rtol=1e-9)
    x = np.linspace(-2.0, 2.0, 7)
    ax, ay = sie_shear_deflection(x, 0.5, *kw)
    rx, ry = _LENS.alpha(x, np.full_like(x, 0.5), lens_kwargs(*kw))
    assert ax.shape == (7,)
    np.testing.assert_allclose(ax, rx, rtol=1e-9)
    np.testing.assert_allclose(ay, ry, rtol=1e-9)
    gx, gy = np.meshgrid(x, x)
    ax, _ = sie_shear_deflection(gx, gy, *kw)
    assert ax.shape == (7, 7)
    assert sie_shear_deflection(0.0, 0.0, *kw) == (0.0, 0.0)


def test_max_sie_deflection_bounds_the_deflection_at_every_angle():
    """The quarter-turn sample in the lens frame bounds |alpha| over a dense full turn, within 0.2 %."""
    rng = np.random.default_rng(5)
    t = np.linspace(0.0, 2.0 * np.pi, 20001)
    for _ in range(50):
        te, e1, e2 = rng.uniform(0.2, 3.0), *rng.uniform(-0.45, 0.45, 2)
        ax, ay = sie_shear_deflection(np.cos(t), np.sin(t), te, e1, e2)
        true = float(np.hypot(ax, ay).max())
        bound = max_sie_deflection(te, e1, e2)
        assert true <= bound <= 1.002 * true
    assert max_sie_deflection(0.0, 0.2, 0.1) == 0.0
