"""Stage4dConfig: defaults, bin specs, errors that name the key."""

import pytest

from dhs.config import ConfigError, config_from_dict
from dhs.config.stage4d import Stage4dConfig


def _cfg(stage4d):
    return config_from_dict({"survey_root": ".", "output_root": "out", "stage4d": stage4d}, check_inputs=False)


def test_defaults_match_the_issue():
    c = Stage4dConfig()
    assert (c.snr_column, c.snr_min, c.resolution_min) == ("arc_snr", 5.0, 0.8)
    assert c.resolution_bins.edges == [0.4, 0.6, 0.8, 1.0]
    assert (c.max_bad_pixel_frac, c.max_wise_brightmask_frac) == (0.2, 0.2)
    assert c.confidence_levels == [0.68, 0.95] and c.audit.auc_limit == 0.6


@pytest.mark.parametrize("bad, key", [
    ({"theta_e_bins": {"width": 0.1, "edges": [1.0]}}, "stage4d.theta_e_bins"),
    ({"resolution_bins": {"edges": [0.6, 0.4]}}, "stage4d.resolution_bins"),
    ({"target_fprs": [1.5]}, "stage4d.target_fprs"),
    ({"audit": {"auc_limit": 0.3}}, "stage4d.audit.auc_limit"),
    ({"snr_column": "snr"}, "stage4d.snr_column"),
    ({"unknown_key": 1}, "stage4d.unknown_key"),
])
def test_bad_values_name_the_key(bad, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _cfg(bad)


def test_missing_scores_file_is_reported(tmp_path):
    with pytest.raises(ConfigError, match="stage4d.scores_path: file not found"):
        config_from_dict({"survey_root": str(tmp_path), "output_root": "out",
                          "stage4d": {"scores_path": str(tmp_path / "nope.parquet")}})


@pytest.mark.parametrize("column", ["arc_snr", "arc_snr_sum", "arc_snr_sum_footprint", "arc_snr_opt"])
def test_every_4c_snr_column_can_drive_the_proxy(column):
    assert _cfg({"snr_column": column}).stage4d.snr_column == column


def test_target_snr_bins_default_to_the_seed_mix_edges():
    assert Stage4dConfig().target_snr_bins.edges == [0.8, 2.0, 8.0, 20.0]
