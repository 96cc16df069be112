"""The synthetic sky's object renderer against GalSim and analytic expectations (no sky needed)."""

from __future__ import annotations

import galsim
import numpy as np
import pytest

from dhs.synth.render import (
    PIXSCALE,
    Shape,
    moffat_transfer,
    render_object,
    shape_from_catalogue,
    truncation_radius,
)


def _galsim_reference(shape: Shape, fwhm: float, dx: float, dy: float, side: int) -> np.ndarray:
    """GalSim drawing of the same catalogue object: Tractor's SHAPE_R is the major-axis half-light
    radius, GalSim's Sersic radius is the circularised one (× sqrt(q)); the major axis at θ East of North
    points along (−sin θ, cos θ) on the image (x toward West), i.e. at π/2 + θ from the +x axis."""
    psf = galsim.Moffat(beta=3.5, fwhm=fwhm)
    if shape.is_point:
        obj = psf
    else:
        e = np.hypot(shape.e1, shape.e2)
        q = (1 - e) / (1 + e)
        theta = 0.5 * np.arctan2(shape.e2, shape.e1)
        rc = shape.r_e * np.sqrt(q)
        gal = galsim.Sersic(n=shape.n, half_light_radius=rc, trunc=truncation_radius(shape.n) * rc,
                            flux_untruncated=True).withFlux(1.0)
        gal = gal.shear(q=q, beta=(np.pi / 2 + theta) * galsim.radians)
        obj = galsim.Convolve(gal, psf)
    return obj.shift(dx * PIXSCALE, dy * PIXSCALE).drawImage(nx=side, ny=side, scale=PIXSCALE).array


@pytest.mark.parametrize("seed", range(12))
def test_galaxy_matches_galsim(seed):
    """Random DEV/SER/EXP/REX objects: max |difference| ≤ 0.5 % of the peak, flux exactly the input."""
    rng = np.random.default_rng(seed)
    kind = ["DEV", "SER", "EXP", "REX"][seed % 4]
    e = rng.uniform(0, 0.5)
    ang = rng.uniform(0, np.pi)
    shape = shape_from_catalogue(kind, rng.uniform(0.3, 1.6), e * np.cos(2 * ang), e * np.sin(2 * ang),
                                 rng.uniform(1.5, 5.5))
    fwhm = rng.uniform(0.8, 1.5)
    dx, dy = rng.uniform(-0.5, 0.5, size=2)
    st = render_object(shape, np.array([2.0]), np.array([fwhm]), dx, dy)[0]
    ref = _galsim_reference(shape, fwhm, dx, dy, st.shape[0])
    assert np.abs(st - 2.0 * ref).max() <= 5e-3 * 2.0 * ref.max()
    assert st.sum() == pytest.approx(2.0, rel=1e-9)


@pytest.mark.parametrize("fwhm", [0.8, 1.1, 1.6])
def test_point_source_matches_galsim_moffat(fwhm):
    st = render_object(Shape("PSF"), np.array([5.0, 1.0]), np.array([fwhm, fwhm]), 0.31, -0.17)
    ref = _galsim_reference(Shape("PSF"), fwhm, 0.31, -0.17, st.shape[-1])
    assert np.abs(st[0] - 5.0 * ref).max() <= 1e-3 * 5.0 * ref.max()
    # centroid at the requested sub-pixel offset
    h = st.shape[-1] // 2
    yy, xx = np.mgrid[: st.shape[1], : st.shape[2]]
    assert (st[1] * xx).sum() / st[1].sum() - h == pytest.approx(0.31, abs=0.01)
    assert (st[1] * yy).sum() / st[1].sum() - h == pytest.approx(-0.17, abs=0.01)


def test_moffat_transfer_is_the_fourier_transform():
    """T(k) equals a direct Hankel transform of the normalised Moffat (numerical quadrature)."""
    from scipy.integrate import quad
    from scipy.special import j0

    from dhs.synth.render import moffat_profile

    fwhm, beta = 1.2, 3.5
    for k in (0.0, 0.5, 2.0, 5.0):
        val, _ = quad(lambda r, k=k: 2 * np.pi * r * moffat_profile(r, fwhm, beta) * j0(k * r), 0, 200, limit=500)
        assert moffat_transfer(np.array([k]), fwhm, beta)[0] == pytest.approx(val, abs=2e-6)


def _moments(img: np.ndarray) -> tuple[float, float, float]:
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    w = img / img.sum()
    mx, my = (w * xx).sum(), (w * yy).sum()
    return (w * (xx - mx) ** 2).sum(), (w * (yy - my) ** 2).sum(), (w * (xx - mx) * (yy - my)).sum()


def test_sky_ellipticity_orientation():
    """SHAPE_E1/E2 are on the sky: e1 > 0 elongates along Dec (image rows), e1 < 0 along RA (columns),
    e2 > 0 along North-East, which on the image (column index toward lower RA) is toward (−x, +y)."""
    fw = np.array([0.9])
    ixx, iyy, _ = _moments(render_object(Shape("EXP", 1.2, 0.5, 0.0, 1.0), np.ones(1), fw, 0, 0)[0])
    assert iyy > 1.5 * ixx
    ixx, iyy, _ = _moments(render_object(Shape("EXP", 1.2, -0.5, 0.0, 1.0), np.ones(1), fw, 0, 0)[0])
    assert ixx > 1.5 * iyy
    ixx, iyy, ixy = _moments(render_object(Shape("EXP", 1.2, 0.0, 0.5, 1.0), np.ones(1), fw, 0, 0)[0])
    assert ixy < -0.2 * ixx
    assert ixx == pytest.approx(iyy, rel=0.02)


def test_bad_catalogue_shape_is_an_error():
    with pytest.raises(ValueError, match="TYPE"):
        shape_from_catalogue("XYZ", 1.0, 0, 0, 1)
    with pytest.raises(ValueError, match="SHAPE_R"):
        shape_from_catalogue("DEV", 0.0, 0, 0, 4)
