"""N2 confuser rules at their boundaries, first match wins, shares."""

from __future__ import annotations

import numpy as np
import pytest

from dhs.config.stage6 import N2Rule, Stage6Config, default_n2_rules
from dhs.reallens.confusers import classify, shares
from dhs.reallens.derived import ellipticity


def _rows(**kw):
    n = len(next(iter(kw.values())))
    base = {"type": ["REX"] * n, "flux_r": [1.0] * n, "sersic": [1.0] * n, "ellipticity": [0.0] * n,
            "shape_r": [0.5] * n, "g_minus_r": [1.0] * n, "mag_r": [22.0] * n}
    base.update(kw)
    return {k: np.asarray(v) for k, v in base.items()}


def _cat(cols, rules=None):
    return classify(cols, default_n2_rules() if rules is None else rules)[1].tolist()


def test_ring_proxy_boundaries():
    cols = _rows(type=["DEV", "DEV", "SER", "SER", "SER", "REX"],
                 flux_r=[5.0, np.nextafter(5.0, 0), 5.0, 5.0, 4.99, 50.0],
                 sersic=[1.0, 1.0, 4.0, np.nextafter(4.0, 0), 6.0, 6.0])
    assert _cat(cols) == ["ring_proxy", "", "ring_proxy", "", "", ""]


def test_edge_on_boundaries_and_definition():
    cols = _rows(ellipticity=[0.5, np.nextafter(0.5, 0), 0.9, 0.9, np.nan],
                 shape_r=[0.6, 0.6, np.nextafter(0.6, 0), 0.6, 0.6])
    assert _cat(cols) == ["edge_on_proxy", "", "", "edge_on_proxy", ""]
    # |e| = 0.4 is q = 3/7, i.e. 1 − q = 4/7 ≥ 0.5: edge-on only under the one_minus_q definition
    e1, e2 = np.array([0.4 * 0.6]), np.array([0.4 * 0.8])
    assert ellipticity(e1, e2)[0] == pytest.approx(0.4, rel=1e-12)
    assert ellipticity(e1, e2, "one_minus_q")[0] == pytest.approx(1 - 3 / 7, rel=1e-12)


def test_blue_clumpy_boundaries_nan_fails():
    cols = _rows(g_minus_r=[0.4, np.nextafter(0.4, 1), 0.0, np.nan, 0.1],
                 mag_r=[20.5, 20.0, np.nextafter(20.5, 21), 19.0, np.nan])
    assert _cat(cols) == ["blue_clumpy", "", "", "", ""]


def test_large_galaxy_boundaries():
    cols = _rows(shape_r=[2.0, np.nextafter(2.0, 0), 3.0], flux_r=[3.0, 3.0, np.nextafter(3.0, 0)])
    assert _cat(cols) == ["large_galaxy", "", ""]


def test_first_match_wins_and_order_is_configurable():
    # DEV, bright, elongated, large, blue: matches all four categories
    cols = _rows(type=["DEV"], flux_r=[10.0], ellipticity=[0.8], shape_r=[3.0], g_minus_r=[0.2], mag_r=[20.0])
    assert _cat(cols) == ["ring_proxy"]
    rules = default_n2_rules()
    assert _cat(cols, rules[2:]) == ["edge_on_proxy"]
    assert _cat(cols, rules[3:]) == ["blue_clumpy"]
    assert _cat(cols, rules[4:]) == ["large_galaxy"]
    assert _cat(cols, [r.model_copy(update={"enabled": False}) for r in rules]) == [""]
    pool, cat = classify(cols, rules[4:] + rules[:4])
    assert pool.tolist() == ["N2"] and cat.tolist() == ["large_galaxy"]


def test_rules_from_config_and_shares():
    st = Stage6Config.model_validate({"n2_rules": [{"category": "bright", "flux_r_min": 2.0}]})
    cols = _rows(flux_r=[1.0, 2.0, 3.0, 0.5])
    pool, cat = classify(cols, st.n2_rules)
    assert pool.tolist() == ["N1", "N2", "N2", "N1"]
    s = shares(pool, cat)
    assert s["n2"] == 2 and s["n2_share"] == 0.5 and s["categories"] == {"bright": 2}
    with pytest.raises(ValueError, match="has no condition"):
        N2Rule(category="empty")
