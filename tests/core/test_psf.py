"""Moffat kernel and transfer function against GalSim."""

import galsim
import numpy as np
import pytest

from dhs.core import moffat_kernel
from dhs.core.psf import (
    DEFAULT_KERNEL_FRACTION,
    DEFAULT_KERNEL_MAX_SIZE,
    KERNEL_FLUX_FRACTION,
    TruncatedKernelWarning,
    moffat_alpha,
    moffat_enclosed_fraction,
    moffat_otf,
    moffat_otf_interp,
)

CASES = [(0.65, 2.5), (0.9, 3.5), (1.3, 3.5), (1.6, 4.5), (2.2, 2.5), (3.0, 3.5), (1.1, 2.0)]


@pytest.mark.parametrize("fwhm,beta", CASES)
def test_kernel_matches_galsim_within_half_percent_of_peak(fwhm, beta):
    kern = moffat_kernel(fwhm, beta=beta, pixscale=0.262)
    n = kern.shape[0]
    ref = galsim.Moffat(beta=beta, fwhm=fwhm).drawImage(nx=n, ny=n, scale=0.262).array
    # GalSim's untruncated Moffat holds >= 99.5 % of its flux in the default-size kernel
    assert ref.sum() >= 0.995
    diff = np.abs(kern - ref / ref.sum()).max()
    assert diff <= 0.005 * kern.max(), (diff, kern.max())


@pytest.mark.parametrize("fwhm,beta", CASES)
def test_kernel_matches_untruncated_galsim_drawing_without_renormalising(fwhm, beta):
    """The default kernel is large enough that normalising it to 1 changes it by ~0.1 % only: it matches
    GalSim's drawing of the untruncated Moffat as drawn (not renormalised to the stamp) to 0.5 % of the peak."""
    kern = moffat_kernel(fwhm, beta=beta, pixscale=0.262)
    n = kern.shape[0]
    ref = galsim.Moffat(beta=beta, fwhm=fwhm).drawImage(nx=n, ny=n, scale=0.262).array
    assert np.abs(kern - ref).max() <= 0.005 * ref.max()


def test_default_kernel_for_beta_near_one_is_capped_but_holds_99_5_percent():
    import warnings

    fwhm, beta = 1.0, 1.8  # 99.9 % would take 415 pixels
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kern = moffat_kernel(fwhm, beta=beta)
    n = kern.shape[0]
    assert n == DEFAULT_KERNEL_MAX_SIZE
    assert KERNEL_FLUX_FRACTION <= moffat_enclosed_fraction((n // 2 + 0.5) * 0.262, fwhm, beta) < 0.999
    assert kern.sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("fwhm,beta", CASES)
def test_kernel_shape_and_normalisation(fwhm, beta):
    kern = moffat_kernel(fwhm, beta=beta)
    n = kern.shape[0]
    assert n % 2 == 1
    assert np.unravel_index(np.argmax(kern), kern.shape) == (n // 2, n // 2)
    assert kern.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(kern, kern[::-1, :], rtol=1e-12, atol=0)
    np.testing.assert_allclose(kern, kern.T, rtol=1e-12, atol=0)
    # the inscribed circle of the default kernel holds >= 99.9 % of the untruncated Moffat
    assert moffat_enclosed_fraction((n // 2 + 0.5) * 0.262, fwhm, beta) >= DEFAULT_KERNEL_FRACTION == 0.999
    # explicit size
    assert moffat_kernel(fwhm, beta=beta, size=n + 2).shape == (n + 2, n + 2)


@pytest.mark.parametrize("fwhm,beta", CASES)
def test_truncating_kernel_size_is_reported_with_the_flux_it_holds(fwhm, beta):
    import warnings

    n = moffat_kernel(fwhm, beta=beta).shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default size and anything larger are silent
        moffat_kernel(fwhm, beta=beta)
        moffat_kernel(fwhm, beta=beta, size=n + 4)
    small = 5
    with pytest.warns(TruncatedKernelWarning, match=r"5x5 kernel") as rec:
        kern = moffat_kernel(fwhm, beta=beta, size=small)
    assert kern.sum() == pytest.approx(1.0, abs=1e-12)
    held = float(str(rec[0].message).split(" holds ")[1].split(" %")[0]) / 100
    # the square lies between its inscribed and circumscribed circles
    half = small / 2 * 0.262
    assert moffat_enclosed_fraction(half, fwhm, beta) - 1e-4 <= held
    assert held <= moffat_enclosed_fraction(half * np.sqrt(2), fwhm, beta) + 1e-4


def test_kernel_rejects_bad_input():
    with pytest.raises(ValueError, match="FWHM"):
        moffat_kernel(0.0)
    with pytest.raises(ValueError, match="beta"):
        moffat_kernel(1.0, beta=1.0)
    with pytest.raises(ValueError, match="odd"):
        moffat_kernel(1.0, size=10)


@pytest.mark.parametrize("fwhm,beta", CASES)
def test_otf_matches_galsim_kvalue(fwhm, beta):
    prof = galsim.Moffat(beta=beta, fwhm=fwhm)
    f = np.linspace(0.0, 6.0, 61)  # cycles / arcsec
    ref = np.array([prof.kValue(galsim.PositionD(2 * np.pi * fi, 0.0)).real for fi in f])
    np.testing.assert_allclose(moffat_otf(f, fwhm, beta), ref, atol=2e-6)
    np.testing.assert_allclose(moffat_otf_interp(f, fwhm, beta), ref, atol=2e-6)


def test_alpha_from_fwhm():
    for fwhm, beta in CASES:
        alpha = moffat_alpha(fwhm, beta)
        # the profile at r = FWHM / 2 is half its central value
        assert (1 + (0.5 * fwhm / alpha) ** 2) ** (-beta) == pytest.approx(0.5, rel=1e-12)
