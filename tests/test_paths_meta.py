"""Local/S3 path helpers and stage metadata."""

from __future__ import annotations

import json
import time

from dhs.config import config_from_dict
from dhs.io.paths import join, read_bytes, to_spark_path, write_bytes
from dhs.io.stage_meta import output_complete, read_stage_config
from dhs.stages.common import StageResult, finish_stage, should_skip, stage_output_dir


def test_join_and_spark_paths(tmp_path):
    assert join("s3://b/p/", "phase3", "v") == "s3://b/p/phase3/v"
    assert to_spark_path("s3://b/p") == "s3a://b/p"
    assert to_spark_path("rel/dir").startswith("/")
    assert join(str(tmp_path), "a", "b") == str(tmp_path / "a" / "b")


def test_write_read_bytes_local(tmp_path):
    p = str(tmp_path / "x" / "y.bin")
    write_bytes(p, b"abc")
    assert read_bytes(p) == b"abc"


def test_stage_output_dirs_follow_design(tmp_path):
    cfg = config_from_dict({"survey_root": str(tmp_path), "output_root": "s3://bkt/out", "experiment_id": "e1"})
    assert stage_output_dir(cfg, "3", "parent") == "s3://bkt/out/phase3/v2_baseline_dr10/parent"
    assert stage_output_dir(cfg, "4a", "manifests") == "s3://bkt/out/phase4a/v2_baseline_dr10/manifests/e1"
    assert stage_output_dir(cfg, "4c", "stamps").endswith("phase4c/v2_baseline_dr10/stamps/e1")
    assert stage_output_dir(cfg, "4d", "completeness").endswith("phase4d/v2_baseline_dr10/completeness/e1")


def test_finish_stage_marks_complete_and_skip_logic(tmp_path, capsys):
    cfg = config_from_dict({"survey_root": str(tmp_path), "output_root": str(tmp_path / "o")})
    out = stage_output_dir(cfg, "3", "parent")
    assert not should_skip(cfg, [out])
    res = StageResult("3", out, rows_in=10, rows_out=8, failures={"bad_flux": 2})
    finish_stage(cfg, res, [out], inputs=["a.fits"], counts={"rows": 8}, started=time.time() - 1.0)
    assert output_complete(out)
    assert should_skip(cfg, [out])
    doc = read_stage_config(out)
    assert doc["counts"] == {"rows": 8} and doc["config"]["output_root"] == str(tmp_path / "o")
    assert doc["inputs"] == ["a.fits"] and doc["seconds"] >= 1.0
    json.dumps(doc)
    line = capsys.readouterr().out
    assert "rows in 10, rows out 8, failures: bad_flux=2" in line
    forced = config_from_dict({"survey_root": str(tmp_path), "output_root": str(tmp_path / "o"), "force": True})
    assert not should_skip(forced, [out])
