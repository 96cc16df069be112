"""The stage6 config section: defaults, validation errors naming keys, input checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from dhs.config import ConfigError, config_from_dict, load_config

REPO = Path(__file__).resolve().parents[2]


def _base(tmp_path, stage6):
    return {"survey_root": str(tmp_path), "output_root": str(tmp_path / "out"), "stage6": stage6}


def test_defaults_are_paper_iv(tmp_path):
    st = config_from_dict(_base(tmp_path, {})).stage6
    assert st.lens_catalog is None and st.match_radius_arcsec == 5.0
    f = st.filters
    assert (f.footprint.dec_min_deg, f.footprint.dec_max_deg) == (-18.0, 32.0)
    assert f.type.allowed == ["SER", "DEV", "REX"] and f.nobs.min == 3 and (f.mag.band, f.mag.max) == ("z", 20.0)
    assert f.maskbits.bits == [1, 5, 6, 7, 11, 12, 13] and f.known_lens.radius_arcsec == 11.0
    assert [r.category for r in st.n2_rules] == ["ring_proxy", "ring_proxy", "edge_on_proxy", "blue_clumpy",
                                                 "large_galaxy"]
    assert (st.sampling.neg_per_pos, st.sampling.n2_fraction) == (100.0, 0.15)
    assert st.cutouts.size == 101 and st.split_fractions == {"train": 0.70, "val": 0.15, "test": 0.15}


def test_debug_yaml_block_loads():
    cfg = load_config(REPO / "configs" / "debug.yaml", check_inputs=False)
    assert cfg.stage6.healpix_nside == 1024 and cfg.stage6.lens_catalog is None


@pytest.mark.parametrize("bad,key", [
    ({"healpix_nside": 100}, "power of 2"),
    ({"split_fractions": {"train": 0.5, "test": 0.2}}, "sum to 1"),
    ({"filters": {"footprint": {"dec_min_deg": 40, "dec_max_deg": 30}}}, "stage6.filters.footprint"),
    ({"filters": {"type": {"allowed": ["SPIRAL"]}}}, "stage6.filters.type.allowed"),
    ({"n2_rules": [{"category": "x"}]}, "has no condition"),
    ({"match_radius": 3}, "stage6.match_radius: unknown key"),
    ({"sampling": {"n2_fraction": 1.5}}, "stage6.sampling.n2_fraction"),
])
def test_bad_values_name_the_key(tmp_path, bad, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.") if "unknown" not in key else key):
        config_from_dict(_base(tmp_path, bad))


def test_missing_lens_catalog_is_an_input_error(tmp_path):
    with pytest.raises(ConfigError, match=r"stage6.lens_catalog: input path does not exist"):
        config_from_dict(_base(tmp_path, {"lens_catalog": str(tmp_path / "nope.csv")}))
