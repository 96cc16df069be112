"""PSF choice per band (map → catalogue → r-band fallback) and the PSFSIZE → Moffat FWHM conversion."""

import math

import numpy as np
import pytest
from scipy import integrate, optimize

from dhs.injection.psf_choice import PsfUnavailable, choose_psf


def _moffat_fwhm_same_nea(psfsize: float, beta: float) -> float:
    """Independent reference: numerically find the Moffat FWHM whose NEA equals that of the Gaussian."""
    sigma = psfsize / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    nea_gauss = 4.0 * math.pi * sigma**2

    def nea_moffat(fwhm: float) -> float:
        alpha = fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))
        def prof(r: float) -> float:
            return (1.0 + (r / alpha) ** 2) ** (-beta)
        norm = integrate.quad(lambda r: 2 * math.pi * r * prof(r), 0, np.inf)[0]
        sq = integrate.quad(lambda r: 2 * math.pi * r * (prof(r) / norm) ** 2, 0, np.inf)[0]
        return 1.0 / sq

    return optimize.brentq(lambda f: nea_moffat(f) - nea_gauss, 0.1 * psfsize, 3 * psfsize, xtol=1e-12)


def test_all_from_map():
    c = choose_psf([1.5, 1.3, 1.2], [9.0, 9.0, 9.0], beta=3.5)
    assert c.source.tolist() == [0, 0, 0]
    assert c.psfsize.tolist() == [1.5, 1.3, 1.2]
    for i, p in enumerate([1.5, 1.3, 1.2]):
        assert c.fwhm[i] == pytest.approx(_moffat_fwhm_same_nea(p, 3.5), rel=1e-6)
    assert c.fwhm[1] / 1.3 == pytest.approx(0.81, abs=0.01)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), None, float("inf")])
def test_catalogue_when_map_unusable(bad):
    c = choose_psf([bad, 1.3, 1.2], [1.6, 1.4, 1.1])
    assert c.source.tolist() == [1, 0, 0]
    assert c.psfsize[0] == 1.6


@pytest.mark.parametrize("bad", [0.0, float("nan"), None, -0.5])
def test_r_fallback_never_zero(bad):
    c = choose_psf([bad, 1.3, bad], [bad, 1.4, 1.0])
    assert c.source.tolist() == [2, 0, 1]
    assert c.psfsize[0] == 1.3 and c.psfsize[2] == 1.0
    assert np.all(np.isfinite(c.fwhm)) and np.all(c.fwhm > 0)


def test_r_from_catalogue_then_fallback():
    c = choose_psf([0.0, 0.0, 0.0], [None, 1.25, None])
    assert c.source.tolist() == [2, 1, 2]
    assert c.psfsize.tolist() == [1.25, 1.25, 1.25]


@pytest.mark.parametrize("beta", [2.5, 3.5, 4.5])
def test_beta_dependence(beta):
    c = choose_psf([1.0, 1.0, 1.0], [None] * 3, beta=beta)
    assert c.fwhm[0] == pytest.approx(_moffat_fwhm_same_nea(1.0, beta), rel=1e-6)


def test_no_usable_r_raises():
    with pytest.raises(PsfUnavailable, match="band r"):
        choose_psf([1.2, 0.0, 1.1], [None, float("nan"), 1.0])
