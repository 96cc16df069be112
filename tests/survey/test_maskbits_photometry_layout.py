"""MASKBITS names, photometric conversions (vs analytic/numerical references) and DR10 paths."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate

from dhs.survey import layout
from dhs.survey.maskbits import DEFAULT_BAD_BITS, WISE_BITS, MaskBit, bit_names, mask_of
from dhs.survey.photometry import (
    flux_to_mag,
    mag5_to_psfdepth_ivar,
    mag_to_flux,
    moffat_fwhm_to_psfsize,
    psfdepth_ivar_to_mag5,
    psfsize_to_moffat_fwhm,
)


def test_maskbit_numbers():
    expected = ["NPRIMARY", "BRIGHT", "SATUR_G", "SATUR_R", "SATUR_Z", "ALLMASK_G", "ALLMASK_R", "ALLMASK_Z",
                "WISEM1", "WISEM2", "BAILOUT", "MEDIUM", "GALAXY", "CLUSTER", "SATUR_I", "ALLMASK_I", "SUB_BLOB"]
    assert [m.name for m in sorted(MaskBit)] == expected
    assert [int(m) for m in sorted(MaskBit)] == list(range(17))


def test_mask_of_and_names():
    assert mask_of([MaskBit.BRIGHT, "satur_g", 11]) == 2 + 4 + 2048
    assert mask_of(WISE_BITS) == 256 + 512
    assert mask_of(DEFAULT_BAD_BITS) == sum(1 << b for b in (1, 2, 3, 4, 5, 6, 7, 10, 11))
    assert bit_names(2 + 256 + (1 << 20)) == ["BRIGHT", "WISEM1", "BIT20"]
    with pytest.raises(ValueError, match="NOPE"):
        mask_of(["NOPE"])
    with pytest.raises(ValueError, match="17"):
        mask_of([17])


def test_flux_to_mag():
    f = np.array([1.0, 10.0, 0.0, -3.0, np.nan, np.inf], dtype=np.float32)
    m = flux_to_mag(f)
    assert m.dtype == np.float64
    assert m[0] == 22.5 and m[1] == pytest.approx(20.0, abs=1e-12)
    assert np.all(np.isnan(m[2:]))
    assert not np.any(m[2:] < 30)  # NaN never passes a "mag < limit" cut
    assert np.allclose(mag_to_flux(flux_to_mag([0.3, 7.0, 1e4])), [0.3, 7.0, 1e4], rtol=1e-12)
    assert float(flux_to_mag(2.0)) == pytest.approx(22.5 - 2.5 * np.log10(2.0))


def test_depth_conversion():
    # sigma = 0.2 nMgy → 5 sigma = 1 nMgy = 22.5 mag
    assert psfdepth_ivar_to_mag5(25.0) == pytest.approx(22.5, abs=1e-12)
    assert np.isnan(psfdepth_ivar_to_mag5([0.0, -1.0])).all()
    iv = np.array([100.0, 2332.47, 251.3])
    assert np.allclose(mag5_to_psfdepth_ivar(psfdepth_ivar_to_mag5(iv)), iv, rtol=1e-12)


def _nea_moffat(fwhm: float, beta: float) -> float:
    alpha = fwhm / (2 * np.sqrt(2 ** (1 / beta) - 1))
    prof = lambda r: (1 + (r / alpha) ** 2) ** (-beta)
    flux = integrate.quad(lambda r: 2 * np.pi * r * prof(r), 0, np.inf)[0]
    sq = integrate.quad(lambda r: 2 * np.pi * r * prof(r) ** 2, 0, np.inf)[0]
    return flux**2 / sq


@pytest.mark.parametrize("beta", [2.5, 3.5, 4.765])
def test_psfsize_to_moffat_has_same_nea(beta):
    """Numerical NEA of the converted Moffat equals the Gaussian NEA 4πσ² of PSFSIZE (rel 1e-6)."""
    psfsize = 1.3
    fwhm = float(psfsize_to_moffat_fwhm(psfsize, beta))
    sigma = psfsize / (2 * np.sqrt(2 * np.log(2)))
    assert _nea_moffat(fwhm, beta) == pytest.approx(4 * np.pi * sigma**2, rel=1e-6)
    assert float(moffat_fwhm_to_psfsize(fwhm, beta)) == pytest.approx(psfsize, rel=1e-12)


def test_moffat_factor_and_bad_values():
    assert float(psfsize_to_moffat_fwhm(1.0)) == pytest.approx(0.811, abs=0.002)
    assert np.isnan(psfsize_to_moffat_fwhm([0.0, -1.0, np.nan])).all()
    with pytest.raises(ValueError, match="beta"):
        psfsize_to_moffat_fwhm(1.0, beta=1.0)


def test_layout_paths():
    assert layout.coadd_path("/s", "3572m307", "image", "g") == \
        "/s/coadd/357/3572m307/legacysurvey-3572m307-image-g.fits.fz"
    assert layout.coadd_path("s3://b/dr10/", "0001p000", "maskbits") == \
        "s3://b/dr10/coadd/000/0001p000/legacysurvey-0001p000-maskbits.fits.fz"
    assert layout.coadd_path("/s", "0001p000", "psfsize", "z").endswith("legacysurvey-0001p000-psfsize-z.fits.fz")
    assert layout.brick_summary_path("s3://b/x") == "s3://b/x/survey-bricks-dr10-south.fits.gz"
    assert layout.sweep_glob("/s") == "/s/sweep/10.1/sweep-*.fits"
    assert layout.sweep_name(3.2, -0.1) == "sweep-000m005-005p000.fits"
    assert layout.sweep_name(357.0, 12.0) == "sweep-355p010-360p015.fits"
    assert layout.sweep_path("/s", 150.0, -30.0) == "/s/sweep/10.1/sweep-150m030-155m025.fits"
    with pytest.raises(ValueError, match="invalid brick name"):
        layout.coadd_path("/s", "../x", "image", "g")
    with pytest.raises(ValueError, match="band"):
        layout.coadd_path("/s", "0001p000", "image", "i")
    with pytest.raises(ValueError, match="product"):
        layout.coadd_path("/s", "0001p000", "model", "g")
    with pytest.raises(ValueError, match="no band"):
        layout.coadd_path("/s", "0001p000", "maskbits", "g")
