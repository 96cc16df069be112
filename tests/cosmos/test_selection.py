"""Deterministic per-task template choice, orientation, size scaling, colours and band fluxes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from dhs.cosmos.bank import CosmosBank, write_bank
from dhs.cosmos.selection import (
    band_fluxes,
    choose_cosmos_source,
    choose_template,
    resolve_colours,
    size_scale,
    template_orientation,
)

from .test_bank import synthetic_images

SEEDS = [int(s) for s in np.linspace(-(2**62), 2**62, 4001, dtype=np.int64)]


@pytest.fixture()
def bank(tmp_path) -> CosmosBank:
    imgs = synthetic_images(7, size=24)
    meta = {"hlr_arcsec": np.array([0.2, 0.3, 0.4, 0.25, 0.5, 0.35, 0.45]),
            "color_gr": np.array([0.5, np.nan, 0.2, 0.3, 0.4, 1.0, 0.8]),
            "color_rz": np.array([0.4, 0.1, 0.3, 0.2, 0.1, 0.6, 0.5])}
    write_bank(tmp_path / "b.h5", imgs, meta, {"pixscale_arcsec": 0.03})
    return CosmosBank.open(tmp_path / "b.h5")


def test_choose_template_is_deterministic_and_uniform(bank):
    idx = np.array([choose_template(bank, s) for s in SEEDS])
    assert idx.min() >= 0 and idx.max() < 7
    np.testing.assert_array_equal(idx, [choose_template(7, s) for s in SEEDS])
    counts = np.bincount(idx, minlength=7)
    assert stats.chisquare(counts).pvalue > 1e-3
    assert choose_template(bank, 12345) == choose_template(bank, 12345)
    with pytest.raises(ValueError, match="empty bank"):
        choose_template(0, 1)


def test_orientation_draws():
    draws = [template_orientation(s) for s in SEEDS]
    angles = np.array([a for a, _ in draws])
    flips = np.array([f for _, f in draws])
    assert np.all((angles >= 0) & (angles < 2 * math.pi))
    assert stats.kstest(angles / (2 * math.pi), "uniform").pvalue > 1e-3
    assert 0.45 < flips.mean() < 0.55
    assert not any(template_orientation(s, allow_flip=False)[1] for s in SEEDS[:200])
    # angle and flip are not the same draw as the index
    assert abs(np.corrcoef(angles, [choose_template(97, s) for s in SEEDS])[0, 1]) < 0.1


def test_size_scale():
    assert size_scale(0.2, 0.5) == pytest.approx(2.5)
    assert size_scale(0.2, None) == 1.0 and size_scale(0.2, float("nan")) == 1.0
    with pytest.raises(ValueError, match="half-light radius"):
        size_scale(0.0, 0.3)


def test_band_fluxes_reproduce_magnitudes_and_colours():
    fg, fr, fz = band_fluxes(23.0, 0.8, 0.6)
    mag = lambda f: 22.5 - 2.5 * math.log10(f)
    assert mag(fr) == pytest.approx(23.0, abs=1e-12)
    assert mag(fg) - mag(fr) == pytest.approx(0.8, abs=1e-12)
    assert mag(fr) - mag(fz) == pytest.approx(0.6, abs=1e-12)
    with pytest.raises(ValueError):
        band_fluxes(23.0, float("nan"), 0.1)


def test_resolve_colours_policy(bank):
    assert resolve_colours(bank, 0, 9.0, 9.0) == (0.5, 0.4, "template")
    assert resolve_colours(bank, 1, 0.7, 0.3) == (0.7, 0.3, "manifest")  # template g-r is NaN
    assert resolve_colours(bank, 0, 0.7, 0.3, colours="manifest") == (0.7, 0.3, "manifest")
    assert resolve_colours(bank, 0, None, 0.3, colours="manifest") == (0.5, 0.4, "template")
    with pytest.raises(ValueError, match="no colours for COSMOS template 1"):
        resolve_colours(bank, 1, None, None)


def test_choose_cosmos_source(bank):
    c = choose_cosmos_source(bank, 777, 22.0, target_hlr_arcsec=0.6)
    again = choose_cosmos_source(bank, 777, 22.0, target_hlr_arcsec=0.6)
    assert again.record() == c.record() and np.array_equal(again.template, c.template)
    assert c.index == choose_template(bank, 777)
    assert c.hlr_arcsec == pytest.approx(0.6)
    expected = bank.template(c.index)
    np.testing.assert_array_equal(c.template, expected[:, ::-1] if c.flip else expected)
    fixed = choose_cosmos_source(bank, 777, 22.0, cosmos_index=4, colours="manifest", manifest_gr=0.1,
                                 manifest_rz=0.2)
    assert fixed.index == 4 and fixed.scale == 1.0 and (fixed.gr, fixed.rz) == (0.1, 0.2)
    rec = fixed.record()
    assert rec["cosmos_index"] == 4 and rec["src_gr_used"] == 0.1 and rec["src_rz_used"] == 0.2
    assert rec["src_mag_r_used"] == 22.0 and rec["src_colour_source"] == "manifest"
    assert fixed.fluxes == pytest.approx(band_fluxes(22.0, 0.1, 0.2))
    # both flips occur over seeds, and a flipped template is the mirror image
    flips = {choose_cosmos_source(bank, s, 22.0, manifest_gr=0.5, manifest_rz=0.5).flip for s in range(40)}
    assert flips == {True, False}
    with pytest.raises(IndexError):
        choose_cosmos_source(bank, 1, 22.0, cosmos_index=7)
