"""Positives pass the same footprint/quality filters as the negatives; failures are named, counted and listed."""

from __future__ import annotations

import numpy as np
import pytest

from dhs.config import ConfigError, config_from_dict
from dhs.config.stage6 import NegativeFilters
from dhs.reallens.filters import (
    FILTER_ORDER,
    apply_filters,
    failed_filter_names,
    filter_failures,
    positive_filters,
    rejection_report,
)
from dhs.reallens.sweep_task import process_columns
from tests.reallens.sweep_factory import default_columns


def _cfg(tmp_path, stage6):
    return config_from_dict({"survey_root": str(tmp_path), "output_root": str(tmp_path / "o"), "stage6": stage6})


def _random_rows(n, rng):
    cols = default_columns(n)
    cols["dec"] = rng.uniform(-25, 40, n)
    cols["ra"] = rng.uniform(0, 360, n)
    cols["type"] = rng.choice(["SER", "DEV", "REX", "EXP", "PSF"], n)
    for b in "grz":
        cols[f"nobs_{b}"] = rng.integers(0, 8, n)
    cols["flux_z"] = rng.choice([0.0, np.nan, 1.0, 5.0, 30.0], n)
    cols["maskbits"] = rng.choice([0, 0, 2, 1 << 8, 1 << 12], n).astype(np.int32)
    return cols


@pytest.mark.parametrize("preset", ["revised", "first_documented"])
def test_a_positive_passes_exactly_when_a_negative_would(tmp_path, preset):
    """Away from known lenses, the rows whose ``filter_failed`` is "" are exactly the pool rows."""
    st = _cfg(tmp_path, {"pool_preset": preset}).stage6
    cols = _random_rows(3000, np.random.default_rng(7))
    keep, _, _ = apply_filters(cols, st.filters, np.zeros(0), np.zeros(0))
    fails = filter_failures(cols, positive_filters(st.filters, st.positive_filters), np.zeros(0), np.zeros(0))
    names = failed_filter_names(fails)
    assert keep.sum() >= 20 and (~keep).sum() >= 20
    np.testing.assert_array_equal(names == "", keep)
    assert set("".join(n + "," for n in names).split(",")) - {""} <= set(FILTER_ORDER) - {"known_lens"}


def test_candidates_carry_the_failed_filters(tmp_path):
    """process_columns: each candidate pair names the filters its object fails, in filter order; a known lens
    next to the object is no reason (the lens is the positive)."""
    st = _cfg(tmp_path, {}).stage6
    cols = default_columns(5)
    cols["ra"] = 10.0 + np.arange(5) * 0.01
    cols["type"][1] = "EXP"
    cols["nobs_z"][2] = 2
    cols["type"][2] = "PSF"
    cols["maskbits"][3] = 1 << 1
    cols["dec"][4] = 33.0
    cand, neg, _ = process_columns(cols, cols["ra"] + 1e-5, cols["dec"].copy(), st, 3, "s.fits")
    got = dict(zip(cand["galaxy_id"].to_pylist(), cand["filter_failed"].to_pylist()))
    assert got == {"0001p000_0": "", "0001p000_1": "type", "0001p000_2": "type,nobs", "0001p000_3": "maskbits",
                   "0001p000_4": "footprint"}
    assert neg.num_rows == 0   # every row is within the known-lens radius


def test_positive_filter_subset(tmp_path):
    """Leaving ``mag`` out of positive_filters lets a faint positive in; it is still a pool filter."""
    st = _cfg(tmp_path, {"positive_filters": ["footprint", "type", "nobs", "maskbits"]}).stage6
    f = positive_filters(st.filters, st.positive_filters)
    assert not f.mag.enabled and not f.known_lens.enabled and st.filters.mag.enabled
    assert f.type.allowed == st.filters.type.allowed


@pytest.mark.parametrize("left_out", ["type", "nobs"])
def test_stratum_filters_cannot_be_left_out(tmp_path, left_out):
    keep = [k for k in ("footprint", "type", "nobs", "mag", "maskbits") if k != left_out]
    with pytest.raises(ConfigError, match=rf"positive_filters must include '{left_out}'"):
        _cfg(tmp_path, {"positive_filters": keep})
    # …unless the negatives are not filtered on it either
    _cfg(tmp_path, {"positive_filters": keep, "filters": {left_out: {"enabled": False}}})


def test_known_lens_is_not_a_positive_filter(tmp_path):
    with pytest.raises(ConfigError, match=r"stage6\.positive_filters"):
        _cfg(tmp_path, {"positive_filters": ["type", "nobs", "known_lens"]})


def test_rejection_report():
    r = rejection_report(["L2", "L1", "L3", "L0"], ["type,nobs", "", "maskbits", "nobs"], ["g2", "g1", "g3", "g0"])
    assert r["rejected"] == 3
    assert r["rejected_first_filter"] == {"footprint": 0, "type": 1, "nobs": 1, "mag": 0, "maskbits": 1,
                                          "known_lens": 0}
    assert r["failed_each_filter"]["nobs"] == 2
    assert r["rows"] == [{"key": "L0", "filters": "nobs", "object": "g0"},
                         {"key": "L2", "filters": "type,nobs", "object": "g2"},
                         {"key": "L3", "filters": "maskbits", "object": "g3"}]


def test_failed_filter_names_order():
    fails = {k: np.array([False, True]) for k in FILTER_ORDER}
    fails["footprint"] = np.array([True, False])
    assert failed_filter_names(fails).tolist() == ["footprint", "type,nobs,mag,maskbits,known_lens"]
    assert failed_filter_names(filter_failures(default_columns(2), NegativeFilters(), np.zeros(0),
                                               np.zeros(0))).tolist() == ["", ""]
