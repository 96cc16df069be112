"""The exact decimation of dhs.core.transfer against a direct sum over the kept frequencies."""

import numpy as np
import pytest
import scipy.fft as sfft

from dhs.core.transfer import _fold_half


@pytest.mark.parametrize("period, ss, u", [(8, 3, 4), (8, 3, 5), (8, 3, 12), (10, 2, 10), (80, 3, 85),
                                           (96, 3, 56), (12, 5, 30)])
def test_folded_half_spectrum_decimates_a_band_limited_signal_exactly(period, ss, u):
    # a real signal's spectrum kept at |k| < u, sampled at every ss-th of big = period * ss points:
    # d[m] = (1 / big) sum_{|k| < u} G[k] exp(2 pi i k m / period), summed directly
    big = period * ss
    rng = np.random.default_rng(period * 100 + u)
    spec = sfft.rfft(rng.normal(size=big))[:u]
    k = np.arange(-(u - 1), u)
    full = np.concatenate((np.conj(spec[:0:-1]), spec))
    m = np.arange(period)
    direct = (full[None, :] * np.exp(2j * np.pi * k[None, :] * m[:, None] / period)).sum(axis=1).real / big
    got = sfft.irfft(_fold_half(spec, period), n=period) * (period / big)
    np.testing.assert_allclose(got, direct, rtol=0, atol=1e-12 * np.abs(direct).max())


def test_dropped_psf_frequencies_move_images_by_less_than_otf_level(monkeypatch):
    """Frequencies where the Moffat OTF is below OTF_LEVEL of its DC value are not transformed: images of
    compact and extended, lensed and unlensed sources in 0.65-2.2" seeing (beta 2.2-4.5) stay within
    OTF_LEVEL of their peak of the transform that keeps every frequency above 1e-10."""
    import dhs.core.transfer as transfer
    from dhs.core import render_lensed_batch

    from .test_batch import _random_rows

    lenses, sources, _, fwhm, beta, offsets = _random_rows(16, 21, interpolated_every=4)
    fwhm = np.random.default_rng(3).uniform(0.65, 2.2, fwhm.shape)
    beta = np.random.default_rng(4).uniform(2.2, 4.5, beta.shape)

    def render():
        transfer.plan.cache_clear()
        return render_lensed_batch(lenses, sources, np.ones((16, 3)), fwhm, psf_beta=beta, offsets_pix=offsets)

    img = render()
    level = transfer.OTF_LEVEL
    monkeypatch.setattr(transfer, "OTF_LEVEL", 1e-10)
    ref = render()
    transfer.plan.cache_clear()
    assert (np.abs(img - ref).max(axis=(1, 2, 3)) <= level * ref.max(axis=(1, 2, 3))).all()
