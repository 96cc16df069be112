"""The builder recovers galaxies whose truth is known.

A RealGalaxyCatalog is written in GalSim's layout from analytic Sersic galaxies (n = 0.6–3, hlr 0.12–0.4″,
q 0.5–1, truncated at 1.2″) convolved with a real COSMOS F814W PSF image, drawn at 0.03″ with white noise
of the COSMOS level (σ = 0.002 counts/pixel; S/N 120–700). The bank built from it must reproduce each
true galaxy rendered with a 1.3″ Moffat at 0.262″/pixel to ≤ 2 % of the peak and 0.5 % in flux (through
dhs.core), with the half-light radius of the truth (Sersic ⊗ the bank's 0.12″ Gaussian) within 5 %.
"""

from __future__ import annotations

from pathlib import Path

import galsim
import numpy as np
import pytest
from astropy.io import fits

from dhs.core import InterpolatedSource, SIELens, render_arc
from dhs.cosmos.bank import CosmosBank
from dhs.cosmos.builder import build_bank

N_GAL, STAMP, SIGMA = 12, 96, 0.002


def write_known_catalogue(folder: Path, psf_image: np.ndarray, seed: int = 5) -> list[galsim.GSObject]:
    """Write gal.fits, psf.fits and real_galaxy_catalog_known.fits; return the true profiles."""
    rng = np.random.Generator(np.random.PCG64(seed))
    psf = galsim.InterpolatedImage(galsim.Image(psf_image, scale=0.03))
    truths, images = [], []
    for _ in range(N_GAL):
        n, hlr, q, beta = rng.uniform(0.6, 3.0), rng.uniform(0.12, 0.4), rng.uniform(0.5, 1.0), rng.uniform(0, np.pi)
        flux = 10 ** rng.uniform(1.0, 2.0)
        g = galsim.Sersic(n=n, half_light_radius=hlr, flux=flux, trunc=1.2).shear(q=q, beta=beta * galsim.radians)
        # the HST image: truth convolved with the effective PSF (which already includes the pixel)
        img = galsim.Convolve(g, psf).drawImage(nx=STAMP, ny=STAMP, scale=0.03, method="no_pixel").array
        images.append((img + rng.normal(0.0, SIGMA, img.shape)).astype(np.float32))
        truths.append(g)
    fits.HDUList([fits.PrimaryHDU(images[0])] + [fits.ImageHDU(x) for x in images[1:]]).writeto(folder / "gal.fits")
    fits.PrimaryHDU(psf_image.astype(np.float32)).writeto(folder / "psf.fits")
    cols = [
        fits.Column("IDENT", "J", array=np.arange(N_GAL) + 1000),
        fits.Column("MAG", "D", array=25.94 - 2.5 * np.log10([g.flux for g in truths])),
        fits.Column("BAND", "5A", array=["F814W"] * N_GAL),
        fits.Column("WEIGHT", "D", array=np.ones(N_GAL)),
        fits.Column("GAL_FILENAME", "16A", array=["gal.fits"] * N_GAL),
        fits.Column("PSF_FILENAME", "16A", array=["psf.fits"] * N_GAL),
        fits.Column("GAL_HDU", "J", array=np.arange(N_GAL)),
        fits.Column("PSF_HDU", "J", array=np.zeros(N_GAL, dtype=int)),
        fits.Column("PIXEL_SCALE", "D", array=np.full(N_GAL, 0.03)),
        fits.Column("NOISE_MEAN", "D", array=np.zeros(N_GAL)),
        fits.Column("NOISE_VARIANCE", "D", array=np.full(N_GAL, SIGMA**2)),
    ]
    fits.BinTableHDU.from_columns(cols).writeto(folder / "real_galaxy_catalog_known.fits")
    return truths


@pytest.mark.slow
def test_builder_recovers_known_galaxies(cosmos_dir, tmp_path):
    psf_image = fits.getdata(cosmos_dir / "real_galaxy_PSF_images_extension.fits", 0).astype(np.float64)
    truths = write_known_catalogue(tmp_path, psf_image)
    res = build_bank(tmp_path, tmp_path / "bank.h5", hlr_max=2.0, min_snr=0.0)
    bank = CosmosBank.open(tmp_path / "bank.h5")
    assert bank.n == N_GAL, res.rejects
    moffat = galsim.Moffat(beta=3.5, fwhm=1.3)
    target = galsim.Gaussian(fwhm=bank.build_params["target_psf_fwhm"])
    for i in range(bank.n):
        g = truths[int(bank.column("catalog_index")[i])]
        shift = (bank.column("recentre_dx_arcsec")[i], bank.column("recentre_dy_arcsec")[i])
        assert np.hypot(*shift) < 0.03  # the truth is centred; recentring moves it by < 1 HST pixel
        truth = galsim.Convolve(g.withFlux(1.0).shift(*shift), moffat).drawImage(nx=65, ny=65, scale=0.262).array
        ours = render_arc(SIELens(0.0), InterpolatedSource(bank.template(i), bank.pixscale, 1.0),
                          psf_fwhm_arcsec=1.3, size=65, pixscale=0.262, supersample=12)
        assert np.abs(ours - truth).max() <= 0.02 * truth.max(), i
        assert ours.sum() == pytest.approx(truth.sum(), rel=0.005)
        hlr_true = galsim.Convolve(g, target).drawImage(nx=STAMP, ny=STAMP, scale=0.03).calculateHLR()
        assert bank.hlr(i) == pytest.approx(hlr_true, rel=0.05), i
