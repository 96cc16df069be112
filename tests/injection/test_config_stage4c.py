"""Stage4cConfig: defaults, validation errors naming the key, input checks."""

import pytest

from dhs.config import ConfigError, config_from_dict
from dhs.core import DEFAULT_SUPERSAMPLE


def _cfg(tmp_path, **stage4c):
    return config_from_dict({"survey_root": str(tmp_path), "output_root": str(tmp_path / "o"),
                             "stage4c": stage4c}, source="test")


def test_defaults(tmp_path):
    s = _cfg(tmp_path).stage4c
    assert s.arc_noise == "none" and s.supersample == DEFAULT_SUPERSAMPLE == 3 and s.psf_beta == 3.5 and s.keep_arrays == ["arc"]


@pytest.mark.parametrize("key,value,match", [
    ("arc_noise", "gauss", "stage4c.arc_noise"), ("supersample", 0, "stage4c.supersample"),
    ("keep_arrays", ["stamp"], "stage4c.keep_arrays"), ("psf_beta", 1.0, "stage4c.psf_beta"),
    ("bad_maskbits", ["NOPE"], "NOPE"), ("colour", 1, "stage4c.colour"),
])
def test_errors_name_the_key(tmp_path, key, value, match):
    with pytest.raises(ConfigError, match=match):
        _cfg(tmp_path, **{key: value})


def test_missing_bank_is_an_input_error(tmp_path):
    with pytest.raises(ConfigError, match="stage4c.cosmos_bank"):
        _cfg(tmp_path, cosmos_bank=str(tmp_path / "nope.h5"))


def test_keep_arrays_canonical_order(tmp_path):
    assert _cfg(tmp_path, keep_arrays=["maskbits", "arc", "arc"]).stage4c.keep_arrays == ["arc", "maskbits"]


def test_records_per_file(tmp_path):
    s = _cfg(tmp_path, keep_arrays=["arc", "invvar"], target_file_mb=100).stage4c
    per_row = 3 * 3 * 64 * 64 * 4 + 2048
    assert s.records_per_file() == int(100e6 // per_row)
    assert _cfg(tmp_path, max_records_per_file=10).stage4c.records_per_file() == 10
