"""Poisson arc noise: mean preserved, variance arc/G with G = sky level × invvar, deterministic."""

import numpy as np
import pytest

from dhs.injection.noise import effective_gain, poisson_arc, sky_level_per_pixel


def test_sky_level():
    # 22.5 mag/arcsec² is 1 nanomaggy per arcsec²
    assert sky_level_per_pixel(22.5, 0.262) == pytest.approx(0.262**2)
    assert sky_level_per_pixel(20.0, 1.0) == pytest.approx(10.0)


def test_gain_is_sky_over_sky_variance():
    iv = np.array([[0.0, 400.0], [np.nan, -1.0]])
    g = effective_gain(iv, 0.5)
    assert g.tolist() == [[0.0, 200.0], [0.0, 0.0]]


def test_poisson_statistics():
    nb, n = 3, 300
    arc = np.full((nb, n, n), 2.0)
    invvar = np.full((nb, n, n), 100.0)
    sky = [0.05, 0.2, 1.0]                        # gains 5, 20, 100 electrons per nanomaggy
    out = poisson_arc(arc, invvar, sky, np.random.default_rng(7))
    for b in range(nb):
        gain = sky[b] * 100.0
        d = out[b] - arc[b]
        # mean within 5 standard errors; variance arc/G within 3 %
        assert abs(d.mean()) < 5 * np.sqrt(2.0 / gain / d.size)
        assert d.var() == pytest.approx(2.0 / gain, rel=0.03)


def test_no_noise_without_data_or_flux_and_deterministic():
    arc = np.zeros((3, 10, 10))
    arc[:, 5, 5] = 3.0
    arc[:, 0, 0] = -1e-9                      # tiny negative ringing stays untouched
    invvar = np.full((3, 10, 10), 50.0)
    invvar[:, 5, 5] = 0.0
    out = poisson_arc(arc, invvar, [0.1, 0.1, 0.1], np.random.default_rng(3))
    assert np.array_equal(out, arc)
    arc[:, 2, 2] = 5.0
    a = poisson_arc(arc, invvar, [0.1] * 3, np.random.default_rng(11))
    b = poisson_arc(arc, invvar, [0.1] * 3, np.random.default_rng(11))
    assert np.array_equal(a, b) and not np.array_equal(a, arc)
