"""Every stage through spark-submit on a standalone cluster (2 worker JVMs on 127.0.0.1), run the way an
EMR step runs it: from a fresh empty working directory, driver and executors on the environment that
`make dist` packs, the run config naming its grid. Outputs equal the local-mode run; nothing is read from
the repository; the step logs are readable; a worker killed during the stage 4c step changes nothing; a
stage started before its input exists stops before any Spark work. The EMR run is made once per test
session (conftest ``emr_run``) and checked by several tests."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from dhs.io.outputs import STAGE_OUTPUT_KINDS, stage_output_dir
from dhs.sampling.grids import BUILTIN_GRIDS

from .compare import assert_same_output, read_output
from .conftest import EMR_STAGES, write_run_config
from .standalone import REPO, client_mode_args, emr_step_args, fresh_workdir, spark_submit

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

JOBS = {"3": "stage3_parent.py", "4a": "stage4a_manifest.py", "4c": "stage4c_inject.py",
        "4d": "stage4d_completeness.py"}


def _outside_repo(path: str) -> bool:
    return not Path(path).resolve().is_relative_to(REPO)


def _uploaded_job(tmp: Path, job: str) -> Path:
    """The job script as a user uploads it (a copy outside the repository)."""
    code = tmp / "code"
    code.mkdir(exist_ok=True)
    return Path(shutil.copy2(REPO / "jobs" / job, code / job))


def test_make_dist_ships_package_data_and_no_pyspark(dist):
    """The wheel holds the named grids and the demo config; pyspark is only the `spark` extra; the packed
    environment has dhs (from the wheel) and no PySpark of its own."""
    with zipfile.ZipFile(dist.wheel) as zf:
        names = set(zf.namelist())
        assert {f"dhs/grids/{g}.yaml" for g in BUILTIN_GRIDS} <= names
        assert zf.read("dhs/presets/debug.yaml") == (REPO / "configs" / "debug.yaml").read_bytes()
        meta = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    spark_reqs = [line for line in meta.splitlines() if line.startswith("Requires-Dist: pyspark")]
    assert spark_reqs and all('extra == "spark"' in line for line in spark_reqs), spark_reqs
    py = dist.env_dir / "bin" / "python"
    code = ("import importlib.util as u, dhs.config, dhs.core, numpy, scipy, astropy, h5py, xxhash; "
            "print(u.find_spec('pyspark') is None, u.find_spec('py4j') is None, dhs.__file__)")
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, check=True, cwd=dist.env_dir)
    none_spark, none_py4j, dhs_file = out.stdout.split()
    assert (none_spark, none_py4j) == ("True", "True")
    assert Path(dhs_file).is_relative_to(dist.env_dir)
    grids = subprocess.run([str(py), "-m", "dhs.cli", "grids"], capture_output=True, text=True, check=True,
                           cwd=dist.env_dir)
    assert re.search(r"^grid_small\s+48\s", grids.stdout, re.M) and str(dist.env_dir) in grids.stdout
    assert dist.archive.stat().st_size > 1_000_000


def test_driver_and_executors_read_nothing_from_the_repository(grid_step):
    """After the grid-based 4a step ran in the probe's driver: dhs, its grid, its demo config, every loaded
    module and every sys.path entry of the driver and of the executors lie outside the repository (in the
    packed environment), and the driver ran in the step's fresh working directory."""
    found = grid_step.probe
    assert len(found["executors"]) >= 1
    for where in [found["driver"], *found["executors"]]:
        assert "/environment/" in where["dhs"] and "/environment/" in where["python"], where["dhs"]
        for key in ("dhs", "grid_small", "demo_config", "cwd", "python", "pyspark"):
            assert _outside_repo(where[key]), (key, where[key])
        assert Path(where["grid_small"]).parent.parent == Path(where["dhs"]).parent  # dhs/grids in the package
        inside = [p for p in where["sys_path"] + where["module_files"] if p and not _outside_repo(p)]
        assert not inside, inside
    assert found["driver"]["cwd"] == str(grid_step.workdir)
    assert any(f.endswith("/dhs/stages/stage4a.py") for f in found["driver"]["module_files"])  # the job ran here
    assert str(REPO) not in grid_step.log


@pytest.mark.parametrize("stage", list(JOBS))
def test_cluster_outputs_equal_local(stage, emr_run, debug_config, stage4d_result):
    local = debug_config
    cluster_cfg = local.model_copy(update={"output_root": str(emr_run.out)})
    for kind in STAGE_OUTPUT_KINDS[stage]:
        a = Path(stage_output_dir(local, stage, kind))
        b = Path(stage_output_dir(cluster_cfg, stage, kind))
        assert (b / "_stage_config.json").is_file(), f"cluster run did not finish {b}"
        if stage == "4d":
            tables = sorted(p.relative_to(a) for p in a.rglob("*.parquet"))
            assert tables, f"no parquet tables under {a}"
            for t in tables:
                assert_same_output(a / t, b / t, f"4d:{t}")
        else:
            assert assert_same_output(a, b, kind) > 0


@dataclass
class GridStep:
    out: Path
    workdir: Path
    log: str
    probe: dict


@pytest.fixture(scope="module")
def grid_step(emr_run, cluster, dist, tmp_path_factory) -> GridStep:
    """The EMR step of stage 4a run again (its spark-submit arguments as planned, on the EMR run's stage 3
    output) with the injection parameters from the grid named in the run config (the shipped debug config
    draws them from priors), one host per cell and one replicate. The step's job script is started by the
    import probe (probe_imports.py), which runs it in its own driver and then records where dhs and its
    files were read from: one application checks both."""
    tmp = tmp_path_factory.mktemp("grid-4a")
    out = tmp / "out"
    shutil.copytree(emr_run.out / "phase3", out / "phase3")
    step = emr_run.plan["AddJobFlowSteps"]["Steps"][EMR_STAGES.index("4a")]
    overrides = {"output_root": str(out), "stage4a.parameter_source": "grid", "stage4a.grid": "grid_small",
                 "stage4a.theta_e_mode": "absolute", "stage4a.resolved.min_fraction": None,
                 "stage4a.brightness_targeting": False, "stage4a.replicates": 1, "stage4a.n_hosts_per_cell": 1}
    args = emr_step_args(step, cluster, emr_run.s3_to_local)
    job = next(i for i, a in enumerate(args) if a.endswith("/" + JOBS["4a"]))
    probe = Path(shutil.copy2(Path(__file__).with_name("probe_imports.py"), tmp / "probe_imports.py"))
    result = tmp / "probe.json"
    args = [*args[:job], str(probe), str(result), *args[job:]]
    for key, value in overrides.items():
        args += ["--set", f"{key}={'null' if value is None else value}"]
    wd = fresh_workdir(tmp / "container-4a", dist.env_dir)
    log = tmp / "step-4a-grid.log"
    spark_submit(cluster, args, wd, log)
    return GridStep(out, wd, log.read_text(errors="replace"), json.loads(result.read_text()))


def test_named_grid_read_from_the_packed_environment(grid_step):
    """The grid-based 4a step records the grid named in the run config, read from the packed environment."""
    doc = json.loads(next(grid_step.out.glob("phase4a/*/manifests/*/_stage_config.json")).read_text())
    source = doc["grid"]["source"]
    assert doc["config"]["stage4a"]["grid"] == "grid_small" and doc["grid"]["size"] == 48
    assert source.startswith(str(grid_step.workdir / "environment" / "lib")), source
    assert source.endswith("/site-packages/dhs/grids/grid_small.yaml")


def test_step_logs_are_readable(emr_run, cluster):
    """No Spark INFO lines after the SparkContext's first three (version, OS, Java: printed before a job
    can set a level); one dhs line per step with counts and seconds; progress lines during 4c; no path of
    the repository in any step or executor log."""
    startup = re.compile(r" INFO SparkContext: (Running Spark version|OS info|Java version) ")
    for stage in EMR_STAGES:
        text = emr_run.logs[stage]
        spark_info = [line for line in text.splitlines()
                      if re.search(r" INFO (?!dhs: )", line) and not startup.search(line)]
        assert not spark_info, (stage, spark_info[:5])
        assert re.search(rf"^\S+ \S+ INFO dhs: stage {stage}: rows in \d+, rows out \d+, ", text, re.M), text[-3000:]
        assert str(REPO) not in text, stage
    c4 = emr_run.logs["4c"]
    assert re.search(r"INFO dhs: stage 4c: manifest: rows=\d+, partitions=4 \(\d+\.\d s\)", c4), c4[-3000:]
    assert re.search(r"INFO dhs: stage 4c: inject \+ write stamps: rows=\d+ \(\d+\.\d s\)", c4)
    progress = re.findall(r"INFO dhs: stage 4c: in progress: rows (\d+)/(\d+) \(\d+ %\), tasks \d+/\d+, \d+ s", c4)
    assert progress, c4[-3000:]
    assert all(int(a) <= int(b) for a, b in progress)
    assert re.search(r"INFO dhs: stage 3: read sweeps: read_tasks=\d+, rows_read=\d+, unreadable=0", emr_run.logs["3"])
    logs = cluster.executor_logs()
    assert logs
    for p in logs:
        assert str(REPO) not in p.read_text(errors="replace"), p


def test_stage_before_its_input_stops_before_spark_work(cluster, dist, debug_config, tmp_path):
    cfg_path = write_run_config(debug_config, tmp_path / "run.yaml", output_root=str(tmp_path / "empty-out"))
    apps_before = len(cluster.state().get("completedapps", [])) + len(cluster.state().get("activeapps", []))
    wd = fresh_workdir(tmp_path / "container", dist.env_dir)
    log = tmp_path / "submit.log"
    proc = spark_submit(cluster, client_mode_args(cluster, dist.archive, _uploaded_job(tmp_path, JOBS["4d"]),
                                                  ["--config", str(cfg_path)]), wd, log, check=False)
    assert proc.returncode == 2, log.read_text()[-3000:]
    missing = tmp_path / "empty-out" / "phase4c" / "v2_baseline_dr10" / "metrics" / "debug"
    assert (f"dhs: stage 4d: input folder {missing} does not exist; it is written by stage 4c: run stage 4c first"
            in log.read_text().splitlines())
    state = cluster.state()
    assert len(state.get("completedapps", [])) + len(state.get("activeapps", [])) == apps_before  # no SparkContext


def test_worker_killed_during_stage4c(emr_run, debug_config, stage4c_result):
    """One worker (JVM, executors, Python workers) was killed while the EMR step of stage 4c ran, after its
    first task output was committed (conftest ``emr_run``): the step succeeded, the loss shows in its log, no
    task was lost or duplicated and the stamps equal the local run's."""
    assert emr_run.worker_killed_during_4c, "stage 4c finished before a worker could be killed"
    text = emr_run.logs["4c"]
    assert "Lost executor" in text or "Executor lost" in text or "removed" in text.lower(), text[-3000:]
    got_cfg = debug_config.model_copy(update={"output_root": str(emr_run.out)})
    for kind in ("stamps", "metrics"):
        got = read_output(Path(stage_output_dir(got_cfg, "4c", kind)))
        ids = got.column("task_id").to_pylist()
        assert len(ids) == len(set(ids)), "duplicated task_id after executor loss"
        assert_same_output(Path(stage_output_dir(debug_config, "4c", kind)),
                           Path(stage_output_dir(got_cfg, "4c", kind)), kind)
