"""Magnification: analytic SIS results, mu -> 1 far from the caustic, consistency with rendered stamps."""

import numpy as np
import pytest

from dhs.core import SersicSource, SIELens, magnification, render_arc
from dhs.core.metrics import lensed_total_flux


@pytest.mark.parametrize("n", [0.5, 1.0, 4.0])
@pytest.mark.parametrize("theta_e", [0.5, 1.0, 2.5])
def test_sis_small_source_at_half_theta_e_has_mu_4(theta_e, n):
    """Point source at beta = theta_E / 2 behind an SIS: mu = 2 theta_E / beta = 4 (both images)."""
    src = SersicSource(1.0, 0.01 * theta_e, n=n, x=0.3 * theta_e, y=0.4 * theta_e)
    assert magnification(SIELens(theta_e), src) == pytest.approx(4.0, rel=0.02)


@pytest.mark.parametrize("beta_over_theta_e", [3.0, 10.0, 40.0])
def test_source_outside_caustic_tends_to_one(beta_over_theta_e):
    """Single SIS image: mu = 1 + theta_E / beta -> 1 far from the lens."""
    theta_e = 0.8
    beta = beta_over_theta_e * theta_e
    mu = magnification(SIELens(theta_e), SersicSource(1.0, 0.02, n=1.0, x=beta))
    assert mu == pytest.approx(1.0 + 1.0 / beta_over_theta_e, rel=0.005)


def test_no_lens_gives_exactly_one():
    assert magnification(SIELens(0.0), SersicSource(1.0, 0.2)) == 1.0


def test_magnification_is_not_limited_by_the_stamp():
    """A big, bright source whose images extend far beyond a small stamp."""
    lens = SIELens(2.5, 0.2, 0.1, 0.05, -0.02)
    src = SersicSource(1.0, 0.8, n=1.0, x=0.3, y=-0.2)
    mu = magnification(lens, src)
    small = render_arc(lens, src, psf_fwhm_arcsec=1.0, size=24).sum()
    big = render_arc(lens, src, psf_fwhm_arcsec=1.0, size=200).sum()
    assert small < 0.8 * mu
    assert big == pytest.approx(mu, rel=0.005)


def test_magnification_matches_stamp_flux_for_random_contained_arcs():
    rng = np.random.default_rng(11)
    for _ in range(10):
        te = rng.uniform(0.3, 2.0)
        lens = SIELens(te, *rng.uniform(-0.3, 0.3, 2), *rng.uniform(-0.08, 0.08, 2))
        src = SersicSource(
            2.0,
            rng.uniform(0.05, 0.4),
            n=rng.uniform(0.5, 4.0),
            e1=rng.uniform(-0.3, 0.3),
            x=rng.uniform(-0.5, 0.5) * te,
            y=rng.uniform(-0.5, 0.5) * te,
        )
        mu = magnification(lens, src)
        stamp = render_arc(lens, src, psf_fwhm_arcsec=1.0, size=160).sum() / 2.0
        # the 160-pixel stamp (42") holds all but the far wings of n ~ 4 sources
        assert stamp == pytest.approx(mu, rel=0.006)
        assert lensed_total_flux(lens, src) == pytest.approx(2.0 * mu, rel=1e-6)


def test_default_grid_is_converged():
    rng = np.random.default_rng(4)
    for _ in range(8):
        te = rng.uniform(0.3, 2.5)
        lens = SIELens(te, *rng.uniform(-0.3, 0.3, 2), *rng.uniform(-0.1, 0.1, 2))
        src = SersicSource(
            1.0,
            rng.uniform(0.04, 0.6),
            n=rng.uniform(0.5, 4.0),
            e1=rng.uniform(-0.3, 0.3),
            x=rng.uniform(-0.6, 0.6) * te,
            y=rng.uniform(-0.6, 0.6) * te,
        )
        assert magnification(lens, src) == pytest.approx(magnification(lens, src, n_base=512), rel=1e-3)


def test_render_returns_the_same_magnification_reusing_its_rays():
    from dhs.core import render_lensed_bands

    rng = np.random.default_rng(12)
    for _ in range(12):
        te = rng.uniform(0.3, 2.5)
        lens = SIELens(te, *rng.uniform(-0.3, 0.3, 2), *rng.uniform(-0.1, 0.1, 2))
        src = SersicSource(
            2.0,
            rng.uniform(0.04, 0.8),
            n=rng.uniform(0.5, 4.0),
            e1=rng.uniform(-0.3, 0.3),
            x=rng.uniform(-0.6, 0.6) * te,
            y=rng.uniform(-0.6, 0.6) * te,
        )
        size = int(rng.choice([24, 48, 64]))
        off = tuple(rng.uniform(-8, 8, 2))
        bands, mu = render_lensed_bands(
            lens, src, [1.0, 2.0], [1.3, 1.1], size=size, offset_pix=off, return_magnification=True
        )
        plain = render_lensed_bands(lens, src, [1.0, 2.0], [1.3, 1.1], size=size, offset_pix=off)
        np.testing.assert_array_equal(bands, plain)
        assert mu == pytest.approx(magnification(lens, src), rel=2e-3)
    assert render_lensed_bands(SIELens(0.0), src, [1.0], [1.0], return_magnification=True)[1] == 1.0


def test_flux_outside_a_non_square_box():
    from dhs.core.render import lensed_flux_outside_box

    lens = SIELens(1.5, 0.1, -0.1, 0.03, 0.0)
    src = SersicSource(1.0, 0.3, n=1.0, x=0.2)
    total = magnification(lens, src)
    assert lensed_flux_outside_box(lens, src, -50.0, 50.0, -50.0, 50.0) == 0.0
    left = lensed_flux_outside_box(lens, src, 0.0, 60.0, -60.0, 60.0)  # keeps only the x >= 0 half
    right = lensed_flux_outside_box(lens, src, -60.0, 0.0, -60.0, 60.0)
    assert left + right == pytest.approx(total, rel=3e-3)


def test_near_point_sources_match_lenstronomy_point_magnification():
    """Compact Sersics (r_eff = 1 milliarcsec; n = 1, 2.5, 4: cusps at every image) behind random SIE +
    shear lenses: the total magnification equals the sum of the point-source image magnifications found by
    lenstronomy's lens-equation solver (independent code), where that sum varies smoothly over the source
    (no caustic within 0.01 arcsec, so the finite-source correction is < 1e-4)."""
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LensModel.Solver.lens_equation_solver import LensEquationSolver

    model = LensModel(["SIE", "SHEAR"])
    solver = LensEquationSolver(model)
    rng = np.random.default_rng(2026)

    def point_mu(kw, x, y, te):
        xs, ys = solver.image_position_from_source(
            x, y, kw, min_distance=0.05, search_window=6 * te, precision_limit=1e-12, num_iter_max=400
        )
        mus = model.magnification(xs, ys, kw)
        return float(np.abs(mus).sum()), mus

    checked = 0
    while checked < 8:
        te = rng.uniform(0.4, 2.5)
        lens = SIELens(te, *rng.uniform(-0.25, 0.25, 2), *rng.uniform(-0.08, 0.08, 2))
        kw = [
            {"theta_E": te, "e1": lens.e1, "e2": lens.e2, "center_x": 0.0, "center_y": 0.0},
            {"gamma1": lens.gamma1, "gamma2": lens.gamma2, "ra_0": 0.0, "dec_0": 0.0},
        ]
        bx, by = rng.uniform(-0.5, 0.5, 2) * te
        mu, mus = point_mu(kw, bx, by, te)
        if np.abs(mus).min() < 0.3 or np.abs(mus).max() > 15:
            continue
        around = [point_mu(kw, bx + 0.01 * c, by + 0.01 * s, te)[0] for c, s in ((1, 0), (0, 1), (-1, 0), (0, -1))]
        if max(abs(a / mu - 1) for a in around) > 0.02:
            continue  # a caustic nearby: the point-source sum is not the compact source's magnification
        checked += 1
        for n in (1.0, 2.5, 4.0):
            src = SersicSource(1.0, 0.001, n=n, e1=0.1, e2=-0.05, x=bx, y=by)
            assert magnification(lens, src) == pytest.approx(mu, rel=3e-3), (lens, bx, by, n, mus)
