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
