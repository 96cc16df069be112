"""The default supersampling, chosen by convergence (issue: <= 0.5 % flux change against 2x more).

We also ask the image itself to be converged: max pixel change <= 0.5 % of the peak against 2x more
(half of the 1 %-of-peak accuracy budget).  DEFAULT_SUPERSAMPLE must pass both on a representative set
of lenses, sources (compact and cuspy ones included) and PSFs, and be the smallest factor that does.
"""

import math

import numpy as np
import pytest

from dhs.core import DEFAULT_SUPERSAMPLE, SersicSource, SIELens, render_arc


def _cases(n=24, seed=3):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        te = rng.uniform(0.2, 3.0)
        lens = SIELens(te, *rng.uniform(-0.35, 0.35, 2), *rng.uniform(-0.1, 0.1, 2))
        r, a = te * math.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
        src = SersicSource(
            1.0,
            rng.uniform(0.04, 0.6),
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


@pytest.mark.slow
def test_default_supersample_is_the_smallest_converged_factor():
    cases = _cases()
    flux, peak = _changes(cases, DEFAULT_SUPERSAMPLE)
    print(f"supersample {DEFAULT_SUPERSAMPLE}: flux change {flux:.5f}, peak change {peak:.5f}")
    assert flux <= 0.005
    assert peak <= 0.005
    if DEFAULT_SUPERSAMPLE > 1:
        flux_lo, peak_lo = _changes(cases, DEFAULT_SUPERSAMPLE - 1)
        print(f"supersample {DEFAULT_SUPERSAMPLE - 1}: flux change {flux_lo:.5f}, peak change {peak_lo:.5f}")
        assert flux_lo > 0.005 or peak_lo > 0.005
