"""The synthetic bank used by the demo: deterministic, valid, usable by the 4c helper."""

from __future__ import annotations

import numpy as np
import pytest

from dhs.core import SIELens, magnification, render_lensed_bands
from dhs.cosmos.bank import META_COLUMNS, CosmosBank
from dhs.cosmos.builder import half_light_radius, light_centroid
from dhs.cosmos.selection import choose_cosmos_source
from dhs.cosmos.synthetic import write_synthetic_bank


def test_synthetic_bank(tmp_path):
    a = CosmosBank.open(write_synthetic_bank(tmp_path / "a.h5", n=12, seed=4), lazy=False)
    b = CosmosBank.open(write_synthetic_bank(tmp_path / "b.h5", n=12, seed=4), lazy=False)
    c = CosmosBank.open(write_synthetic_bank(tmp_path / "c.h5", n=12, seed=5), lazy=False)
    assert a.n == 12 and set(META_COLUMNS) <= set(a.meta.column_names)
    for i in range(a.n):
        t = a.template(i)
        np.testing.assert_array_equal(t, b.template(i))
        assert abs(float(t.astype(np.float64).sum()) - 1.0) < 1e-6 and t.min() >= 0
        cx, cy = light_centroid(t)
        assert abs(cx) < 0.05 and abs(cy) < 0.05  # analytic centring, up to truncation at the edge (<0.5 %)
        assert a.hlr(i) == pytest.approx(half_light_radius(t, a.pixscale))
    assert np.all((a.column("hlr_arcsec") > 0.08) & (a.column("hlr_arcsec") < 0.35))
    assert np.all(a.column("stamp_flux_frac") > 0.99)
    assert not np.array_equal(a.template(0), c.template(0))
    np.testing.assert_allclose(a.column("mag_g") - a.column("mag_r"), a.column("color_gr"))


def test_synthetic_bank_in_a_lensed_injection(tmp_path):
    bank = CosmosBank.open(write_synthetic_bank(tmp_path / "s.h5", n=8))
    lens = SIELens(1.0, e1=0.05)
    ch = choose_cosmos_source(bank, 99, 23.0, target_hlr_arcsec=0.3)
    assert ch.colour_source == "template" and ch.hlr_arcsec == pytest.approx(0.3)
    src = ch.source(x=0.2, y=0.1)
    bands = render_lensed_bands(lens, src, list(ch.fluxes), [1.4, 1.3, 1.2], size=80)
    np.testing.assert_allclose(bands.reshape(3, -1).sum(axis=1), np.array(ch.fluxes) * magnification(lens, src),
                               rtol=0.01)
