"""Running 4a, 4c or 4d before the stage that writes its input stops before any Spark work with one line
naming the missing folder and the stage that writes it (`dhs run` and the jobs/*.py entry points)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dhs.config import config_from_dict
from dhs.io.outputs import stage_output_dir
from dhs.stages.upstream import MissingInputError, check_upstream

REPO = Path(__file__).resolve().parents[2]
JOBS = {"4a": "stage4a_manifest.py", "4c": "stage4c_inject.py", "4d": "stage4d_completeness.py"}
WRITER = {"4a": ("3", "parent"), "4c": ("4a", "manifests"), "4d": ("4c", "metrics")}


def _cfg(tmp_path, **extra):
    return config_from_dict({"survey_root": str(tmp_path), "output_root": str(tmp_path / "out"), **extra})


def _complete(cfg, stage, kind):
    d = Path(stage_output_dir(cfg, stage, kind))
    d.mkdir(parents=True, exist_ok=True)
    (d / "_stage_config.json").write_text(json.dumps({"stage": stage}))
    return d


@pytest.mark.parametrize("stage", ["4a", "4c", "4d"])
def test_missing_input_names_folder_and_writer(tmp_path, stage):
    cfg = _cfg(tmp_path)
    writer, kind = WRITER[stage]
    with pytest.raises(MissingInputError) as exc:
        check_upstream(cfg, [stage])
    msg = str(exc.value)
    assert msg == (f"stage {stage}: input folder {stage_output_dir(cfg, writer, kind)} does not exist; "
                   f"it is written by stage {writer}: run stage {writer} first")
    _complete(cfg, writer, kind)
    check_upstream(cfg, [stage])                       # present and complete: nothing raised


def test_incomplete_input_is_named(tmp_path):
    cfg = _cfg(tmp_path)
    d = Path(stage_output_dir(cfg, "4a", "manifests"))
    (d / "region_split=train").mkdir(parents=True)
    with pytest.raises(MissingInputError, match=r"stage 4c: input folder .*manifests/debug is incomplete "
                       r"\(no _stage_config.json\); it is written by stage 4a: run stage 4a again"):
        check_upstream(cfg, ["4c"])


def test_stages_run_in_order_or_already_done_need_nothing(tmp_path):
    cfg = _cfg(tmp_path)
    check_upstream(cfg, ["3", "4a", "4c", "4d"])       # each input is written earlier in the same run
    with pytest.raises(MissingInputError, match="written by stage 4a"):
        check_upstream(cfg, ["3", "4c"])
    _complete(cfg, "4c", "stamps")
    _complete(cfg, "4c", "metrics")
    check_upstream(cfg, ["4c"])                        # 4c's own output is complete: it is skipped
    with pytest.raises(MissingInputError, match="written by stage 4a"):
        check_upstream(_cfg(tmp_path, force=True), ["4c"])


def test_manifest_path_is_checked_as_given(tmp_path):
    cfg = config_from_dict({"survey_root": str(tmp_path), "output_root": str(tmp_path / "out"),
                            "stage4c": {"manifest_path": str(tmp_path / "my-manifest")}}, check_inputs=False)
    with pytest.raises(MissingInputError, match=r"my-manifest \(stage4c.manifest_path\) does not exist"):
        check_upstream(cfg, ["4c"])
    (tmp_path / "my-manifest").mkdir()
    check_upstream(cfg, ["4c"])


def _config_file(tmp_path) -> Path:
    p = tmp_path / "run.yaml"
    p.write_text(yaml.safe_dump({"survey_root": str(tmp_path), "output_root": str(tmp_path / "out")}))
    return p


# Runs a script or module as __main__, then says whether pyspark was ever imported.
PROBE = """
import runpy, sys
target, sys.argv = sys.argv[1], sys.argv[1:]
try:
    if target.endswith(".py"):
        runpy.run_path(target, run_name="__main__")
    else:
        runpy.run_module(target, run_name="__main__", alter_sys=True)
finally:
    print("PYSPARK_IMPORTED=" + str("pyspark" in sys.modules), file=sys.stderr)
"""


@pytest.mark.parametrize("stage", ["4a", "4c", "4d"])
@pytest.mark.parametrize("entry", ["dhs run", "job"])
def test_cli_and_jobs_exit_with_one_line_before_spark(tmp_path, stage, entry):
    cfg_file = _config_file(tmp_path)
    if entry == "job":
        argv = [str(REPO / "jobs" / JOBS[stage]), "--config", str(cfg_file)]
    else:
        argv = ["dhs.cli", "run", str(cfg_file), "--stage", stage]
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, cwd=tmp_path,
                         timeout=120)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert lines[-1] == "PYSPARK_IMPORTED=False"            # no Spark session, not even an import
    writer, kind = WRITER[stage]
    folder = tmp_path / "out" / f"phase{writer}" / "v2_baseline_dr10" / kind
    if kind != "parent":
        folder = folder / "debug"
    assert lines[:-1] == [f"dhs: stage {stage}: input folder {folder} does not exist; it is written by stage "
                          f"{writer}: run stage {writer} first"]
