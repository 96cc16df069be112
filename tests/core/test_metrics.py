"""Arc SNR metrics (docs/outputs.md), injected flux, lensed half-light radius."""

import math

import numpy as np
import pytest

from dhs.core import (
    SersicSource,
    SIELens,
    arc_snr_metrics,
    lensed_half_light_radius,
    render_arc,
    total_injected_flux,
)


def test_snr_definitions_on_a_hand_computed_stamp():
    arc = np.zeros((5, 5))
    arc[2, 2] = 10.0
    arc[2, 3] = 4.0
    arc[1, 2] = 0.5  # below 10 % of the maximum: outside the footprint
    arc[0, 0] = 3.0  # on a bad pixel
    invvar = np.full((5, 5), 4.0)  # sigma = 0.5
    invvar[2, 3] = 1.0  # sigma = 1
    good = np.ones((5, 5), bool)
    good[0, 0] = False
    m = arc_snr_metrics(arc, invvar, good)
    assert m["arc_snr"] == pytest.approx(10.0 * 2.0)
    # seed definition: every good pixel of the stamp (24 of 25; 23 with sigma^2 = 0.25, one with 1)
    assert m["arc_snr_sum"] == pytest.approx((10.0 + 4.0 + 0.5) / math.sqrt(23 * 0.25 + 1.0))
    assert m["arc_snr_sum_footprint"] == pytest.approx((10.0 + 4.0) / math.sqrt(0.25 + 1.0))
    assert m["arc_snr_opt"] == pytest.approx(math.sqrt(100 * 4 + 16 * 1 + 0.25 * 4))


def test_snr_footprint_uses_the_arcs_own_maximum_even_if_masked():
    arc = np.zeros((4, 4))
    arc[0, 0] = 100.0  # masked peak
    arc[1, 1] = 20.0  # 20 % of the peak: in the footprint
    arc[2, 2] = 5.0  # 5 %: not in the footprint
    invvar = np.ones((4, 4))
    good = np.ones((4, 4), bool)
    good[0, 0] = False
    m = arc_snr_metrics(arc, invvar, good)
    assert m["arc_snr_sum_footprint"] == pytest.approx(20.0)
    assert m["arc_snr"] == pytest.approx(20.0)
    assert m["arc_snr_sum"] == pytest.approx(25.0 / math.sqrt(15.0))  # 15 good pixels, sigma = 1


def test_snr_sum_is_diluted_by_the_stamp_but_the_footprint_sum_is_not():
    """Seed arc_snr_sum over all good pixels: with (almost) all the arc flux inside both stamps, it scales
    as 1/sqrt(number of pixels) (48² → 96² pixels: a factor 2); the footprint variant stays put."""
    lens, src = SIELens(1.0), SersicSource(5.0, 0.2, x=0.2)
    small = render_arc(lens, src, psf_fwhm_arcsec=1.2, size=48)
    big = render_arc(lens, src, psf_fwhm_arcsec=1.2, size=96)
    m_small = arc_snr_metrics(small, np.full(small.shape, 100.0), np.ones(small.shape, bool))
    m_big = arc_snr_metrics(big, np.full(big.shape, 100.0), np.ones(big.shape, bool))
    assert m_big["arc_snr_sum_footprint"] == pytest.approx(m_small["arc_snr_sum_footprint"], rel=1e-3)
    flux_ratio = big.sum() / small.sum()
    assert m_big["arc_snr_sum"] == pytest.approx(m_small["arc_snr_sum"] * flux_ratio / 2.0, rel=1e-9)
    assert m_small["arc_snr_sum"] == pytest.approx(small.sum() / math.sqrt(48 * 48 / 100.0), rel=1e-12)
    assert m_big["arc_snr"] == pytest.approx(m_small["arc_snr"], rel=1e-3)   # the peak is the peak


def test_every_snr_scales_linearly_with_flux():
    """Brightness targeting relies on it: scaling the arc by k scales each metric by k."""
    rng = np.random.default_rng(3)
    arc = render_arc(SIELens(1.2), SersicSource(1.0, 0.15, x=0.1), psf_fwhm_arcsec=1.0, size=32)
    invvar = rng.uniform(50.0, 150.0, arc.shape)
    good = rng.uniform(size=arc.shape) > 0.1
    m1, m3 = arc_snr_metrics(arc, invvar, good), arc_snr_metrics(3.7 * arc, invvar, good)
    for k in m1:
        assert m3[k] == pytest.approx(3.7 * m1[k], rel=1e-12), k


@pytest.mark.parametrize(
    "arc,invvar,good",
    [
        (np.zeros((3, 3)), np.ones((3, 3)), np.ones((3, 3), bool)),  # no flux
        (np.ones((3, 3)), np.zeros((3, 3)), np.ones((3, 3), bool)),  # no valid invvar
        (np.ones((3, 3)), np.ones((3, 3)), np.zeros((3, 3), bool)),  # everything masked
    ],
)
def test_snr_is_none_when_no_good_pixel_carries_flux(arc, invvar, good):
    assert arc_snr_metrics(arc, invvar, good) == {"arc_snr": None, "arc_snr_sum": None,
                                                  "arc_snr_sum_footprint": None, "arc_snr_opt": None}


def test_snr_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="one shape"):
        arc_snr_metrics(np.ones((3, 3)), np.ones((3, 4)), np.ones((3, 3), bool))


def test_total_injected_flux_per_band():
    arcs = np.stack([np.full((4, 4), 0.5), np.full((4, 4), 1.0), np.zeros((4, 4))])
    np.testing.assert_allclose(total_injected_flux(arcs), [8.0, 16.0, 0.0])


def test_half_light_radius_of_a_gaussian():
    """A well-sampled circular Gaussian: r_half = sigma sqrt(2 ln 2)."""
    n, sigma_pix = 101, 6.0
    yy, xx = np.mgrid[:n, :n]
    cx, cy = 50.3, 49.6
    img = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma_pix**2))
    r = lensed_half_light_radius(img, 0.262, (cx, cy))
    assert r == pytest.approx(sigma_pix * math.sqrt(2 * math.log(2)) * 0.262, rel=0.01)


def test_half_light_radius_of_an_einstein_ring_is_near_theta_e():
    img = render_arc(
        SIELens(1.5), SersicSource(1.0, 0.05, n=1.0), psf_fwhm_arcsec=0.4, size=64, offset_pix=(0.3, 0.2)
    )
    r = lensed_half_light_radius(img, 0.262, (32.3, 32.2))
    assert r == pytest.approx(1.5, rel=0.05)
    assert math.isnan(lensed_half_light_radius(np.zeros((8, 8)), 0.262, (4, 4)))


def _half_light_radius_by_full_sort(arc, pixscale, centre):
    """Every pixel sorted by distance (ties in index order); linear in the cumulative flux."""
    rows, cols = np.indices(arc.shape)
    r = np.hypot(cols - centre[0], rows - centre[1]).reshape(-1)
    order = np.argsort(r, kind="stable")
    cum = np.cumsum(arc.reshape(-1)[order])
    k = int(np.argmax(cum >= 0.5 * cum[-1]))
    if k == 0:
        return r[order[0]] * pixscale
    c0, c1 = cum[k - 1], cum[k]
    return (r[order[k - 1]] + (0.5 * cum[-1] - c0) / (c1 - c0) * (r[order[k]] - r[order[k - 1]])) * pixscale


@pytest.mark.parametrize("seed", range(6))
def test_half_light_radius_matches_a_full_sort(seed):
    """The ring-by-ring search gives the radius of a sort of the whole stamp (to rounding), for smooth,
    noisy, single-pixel and few-pixel images and centres on, between and off pixel centres."""
    rng = np.random.default_rng(seed)
    for n in (5, 16, 64, 65):
        yy, xx = np.indices((n, n))
        images = [
            rng.random((n, n)),
            np.exp(-((xx - rng.uniform(0, n)) ** 2 + (yy - rng.uniform(0, n)) ** 2) / rng.uniform(1, 50)),
        ]
        for count in (1, 3):
            img = np.zeros((n, n))
            img[rng.integers(n, size=count), rng.integers(n, size=count)] = rng.uniform(0.5, 1.0, count)
            images.append(img)
        for img in images:
            for centre in ((n // 2, n // 2), (n / 2 - 0.5, n / 2 - 0.5), tuple(rng.uniform(0, n, 2))):
                want = _half_light_radius_by_full_sort(img, 0.262, centre)
                assert lensed_half_light_radius(img, 0.262, centre) == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_snr_ignores_non_finite_pixels_and_infinite_invvar():
    """Pixels with a non-finite arc value or invvar (+inf included) are not usable: the metrics equal
    those of the same image with those pixels masked out."""
    rng = np.random.default_rng(2)
    arc = rng.uniform(0.0, 1.0, (16, 16))
    invvar = rng.uniform(10.0, 100.0, (16, 16))
    good = np.ones((16, 16), bool)
    bad = np.zeros((16, 16), bool)
    bad[3, 4] = bad[7, 7] = bad[10, 2] = True
    arc_bad, invvar_bad = arc.copy(), invvar.copy()
    arc_bad[3, 4] = np.nan
    arc_bad[7, 7] = np.inf  # (an infinite arc pixel would otherwise also set the footprint's peak)
    invvar_bad[10, 2] = np.inf
    got = arc_snr_metrics(arc_bad, invvar_bad, good)
    want = arc_snr_metrics(arc, invvar, good & ~bad)
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-12)
