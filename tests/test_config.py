"""Configuration: typed loading, overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dhs.config import ConfigError, RunConfig, apply_overrides, config_from_dict, load_config

REPO = Path(__file__).resolve().parent.parent


def _base(tmp_path: Path) -> dict:
    return {"survey_root": str(tmp_path), "output_root": str(tmp_path / "out")}


def test_debug_config_loads_with_every_stage_section(tmp_path):
    cfg = load_config(REPO / "configs" / "debug.yaml", [f"survey_root={tmp_path}", "synth=null"])
    assert isinstance(cfg, RunConfig)
    assert cfg.survey_root == str(tmp_path)
    for section in ("stage3", "stage4a", "stage4c", "stage4d", "stage6"):
        assert getattr(cfg, section) is not None


def test_unknown_key_is_named(tmp_path):
    data = _base(tmp_path) | {"spark": {"mastr": "local[1]"}}
    with pytest.raises(ConfigError, match=r"spark\.mastr: unknown key"):
        config_from_dict(data)


def test_unknown_stage_key_is_named(tmp_path):
    data = _base(tmp_path) | {"stage4c": {"no_such_option": 1}}
    with pytest.raises(ConfigError, match=r"stage4c\.no_such_option: unknown key"):
        config_from_dict(data)


def test_wrong_type_is_named_with_value(tmp_path):
    data = _base(tmp_path) | {"seed": "not-a-number"}
    with pytest.raises(ConfigError, match=r"seed: .*integer.*not-a-number"):
        config_from_dict(data)


def test_out_of_range_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"spark\.shuffle_partitions: .*greater than or equal to 1"):
        config_from_dict(_base(tmp_path) | {"spark": {"shuffle_partitions": 0}})


def test_missing_required_key(tmp_path):
    with pytest.raises(ConfigError, match=r"output_root: required key is missing"):
        config_from_dict({"survey_root": str(tmp_path)})


def test_missing_input_path_is_named(tmp_path):
    missing = tmp_path / "no-such-sky"
    with pytest.raises(ConfigError, match=r"survey_root: input path does not exist .*no-such-sky"):
        config_from_dict({"survey_root": str(missing), "output_root": str(tmp_path)})


def test_missing_input_allowed_when_synthetic_sky_is_built(tmp_path):
    cfg = config_from_dict({"survey_root": str(tmp_path / "later"), "output_root": str(tmp_path), "synth": {}})
    assert cfg.synth is not None and cfg.synth.n_bricks >= 1


def test_set_overrides_parse_yaml_values(tmp_path):
    cfg = config_from_dict(_base(tmp_path), ["seed=7", "force=true", "spark.conf.spark.executor.cores=4"])
    assert cfg.seed == 7 and cfg.force is True
    assert cfg.spark.conf == {"spark.executor.cores": "4"}


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="expected key.path=value"):
        apply_overrides({}, ["novalue"])
    with pytest.raises(ConfigError, match="seed is not a section"):
        apply_overrides({"seed": 3}, ["seed.x=1"])


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("survey_root: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_resolved_dict_round_trips(tmp_path):
    cfg = config_from_dict(_base(tmp_path), ["experiment_id=exp1"])
    again = config_from_dict(yaml.safe_load(yaml.safe_dump(cfg.resolved_dict())))
    assert again == cfg


def test_experiment_id_must_be_path_safe(tmp_path):
    with pytest.raises(ConfigError, match=r"experiment_id"):
        config_from_dict(_base(tmp_path) | {"experiment_id": "../escape"})
