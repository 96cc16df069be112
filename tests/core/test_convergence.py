"""The default supersampling, chosen by convergence (issue: <= 0.5 % flux change against 2x more).

We also ask the image itself to be converged: max pixel change <= 0.15 % of the peak against 2x more.
DEFAULT_SUPERSAMPLE must pass both on a representative set of lenses (a quarter unlensed), sources
(compact and cuspy ones included: r_eff down to 0.02 arcsec, n up to 4) and PSFs, and be the smallest
factor that does.  (Since the renderer carries the sub-cell moments of refined cells, supersampling 2
meets the issue's 0.5 % on both counts -- 0.04 % flux, 0.2 % of the peak -- but not the image criterion;
it also puts unlensed Sersics 0.13-0.2 % of the peak away from GalSim's exact rendering, test_render.py,
against <= 0.03 % at 3.)
"""

import math

import numpy as np
import pytest

from dhs.core import DEFAULT_SUPERSAMPLE, SersicSource, SIELens, render_arc


def _cases(n=24, seed=3):
    """Lensed and (one in four) unlensed Sersics, r_eff log-uniform 0.02-0.6 arcsec, n 0.5-4, any PSF."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        te = rng.uniform(0.2, 3.0) if i % 4 else 0.0
        lens = SIELens(te, *rng.uniform(-0.35, 0.35, 2), *rng.uniform(-0.1, 0.1, 2)) if te else SIELens(0.0)
        r, a = max(te, 0.3) * math.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
        src = SersicSource(
            1.0,
            math.exp(rng.uniform(math.log(0.02), math.log(0.6))),
            n=rng.uniform(0.5, 4.0),
            e1=rng.uniform(-0.35, 0.35),
            e2=rng.uniform(-0.35, 0.35),
            x=r * math.cos(a),
            y=r * math.sin(a),
        )
        out.append(
            (lens, src, rng.uniform(0.65, 2.2), rng.uniform(2.5, 4.5), tuple(rng.uniform(-0.5, 0.5, 2)))
        )
    return out


def _changes(cases, s):
    flux, peak = 0.0, 0.0
    for lens, src, fwhm, beta, off in cases:
        a = render_arc(lens, src, psf_fwhm_arcsec=fwhm, psf_beta=beta, size=64, supersample=s, offset_pix=off)
        b = render_arc(
            lens, src, psf_fwhm_arcsec=fwhm, psf_beta=beta, size=64, supersample=2 * s, offset_pix=off
        )
        flux = max(flux, abs(a.sum() / b.sum() - 1))
        peak = max(peak, np.abs(a - b).max() / b.max())
    return flux, peak


#: the image criterion: a sixth of the issue's 1 %-of-peak accuracy budget, the rest being left to the PSF
#: transfer and to the validation references' own sampling
PEAK_CONVERGED = 0.0015


@pytest.mark.slow
def test_default_supersample_is_the_smallest_converged_factor():
    cases = _cases()
    flux, peak = _changes(cases, DEFAULT_SUPERSAMPLE)
    print(f"supersample {DEFAULT_SUPERSAMPLE}: flux change {flux:.5f}, peak change {peak:.5f}")
    assert flux <= 0.005  # the criterion
    assert peak <= PEAK_CONVERGED
    if DEFAULT_SUPERSAMPLE > 1:
        flux_lo, peak_lo = _changes(cases, DEFAULT_SUPERSAMPLE - 1)
        print(f"supersample {DEFAULT_SUPERSAMPLE - 1}: flux change {flux_lo:.5f}, peak change {peak_lo:.5f}")
        assert flux_lo > 0.005 or peak_lo > PEAK_CONVERGED


def test_refinement_flux_cutoff_is_converged(monkeypatch):
    """Cells whose estimated error is below sersic._MIN_CELL_ERROR of the flux are not refined; a cutoff
    30x smaller changes lensed and unlensed images (compact and cuspy sources included) by < 1e-4 of their
    peak and their flux by < 1e-4."""
    import dhs.core.sersic as sersic
    import dhs.core.sersic_batch as sersic_batch
    from dhs.core import render_lensed_batch

    from .test_batch import _random_rows

    lenses, sources, _, fwhm, beta, offsets = _random_rows(24, 11, interpolated_every=25)
    fluxes = np.ones((24, 3))
    kw = dict(psf_beta=beta, offsets_pix=offsets)
    img = render_lensed_batch(lenses, sources, fluxes, fwhm, **kw)
    finer = sersic._MIN_CELL_ERROR / 30.0
    monkeypatch.setattr(sersic, "_MIN_CELL_ERROR", finer)
    monkeypatch.setattr(sersic_batch, "_MIN_CELL_ERROR", finer)
    ref = render_lensed_batch(lenses, sources, fluxes, fwhm, **kw)
    assert (np.abs(img - ref).max(axis=(1, 2, 3)) <= 1e-4 * ref.max(axis=(1, 2, 3))).all()
    assert np.abs(img.sum(axis=(2, 3)) / ref.sum(axis=(2, 3)) - 1).max() <= 1e-4
