"""Fixtures for the cluster tests, built once per test session:

* ``dist`` — ``make dist`` into a temporary folder (the wheel and ``dhs-env.tar.gz``), the archive unpacked;
* ``cluster`` — a standalone cluster (2 worker JVMs on 127.0.0.1) on a copy of Spark outside the repository;
* ``emr_run`` — stages 3, 4a, 4c, 4d run as the EMR steps of ``scripts/emr/submit.py`` (archive mode): every
  step's spark-submit arguments as planned, from a fresh working directory holding only ``environment``.
  While the 4c step runs, one worker (its JVM, executors and Python workers) is killed as soon as the step's
  first task output is committed, then started again: the run's outputs are also the executor-loss check.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from dhs.io.outputs import stage_output_dir

from .emr_plan import load_submit
from .standalone import (
    StandaloneCluster,
    emr_step_args,
    fresh_workdir,
    spark_home_copy,
    spark_submit,
    standalone_cluster,
)

REPO = Path(__file__).resolve().parents[2]
EMR_STAGES = ("3", "4a", "4c", "4d")


@dataclass
class Dist:
    folder: Path        # what `make dist` wrote: dhs-<version>-py3-none-any.whl, dhs-env.tar.gz
    wheel: Path
    archive: Path
    env_dir: Path       # the archive unpacked (what --archives ...#environment gives a container)
    seconds: float


@pytest.fixture(scope="session")
def dist(tmp_path_factory) -> Dist:
    """`make dist` with DIST / DIST_ENV in a temporary folder (the venv of this test run is not rebuilt)."""
    work = tmp_path_factory.mktemp("make-dist")
    venv = Path(sys.executable).parent.parent
    t0 = time.time()
    subprocess.run(["make", "-C", str(REPO), "-o", f"{venv}/.dhs-installed", "dist", f"VENV={venv}",
                    f"DIST={work / 'dist'}", f"DIST_ENV={work / 'dist-env'}"], check=True, capture_output=True)
    seconds = time.time() - t0
    folder = work / "dist"
    archive = folder / "dhs-env.tar.gz"
    env_dir = work / "unpacked"
    with tarfile.open(archive) as tf:
        tf.extractall(env_dir, filter="tar")
    shutil.rmtree(work / "dist-env")          # only the archive is used from here on
    return Dist(folder, next(folder.glob("dhs-*.whl")), archive, env_dir, seconds)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    base = tmp_path_factory.mktemp("standalone")
    with standalone_cluster(base / "cluster", spark_home_copy(base / "spark")) as c:
        yield c


def write_run_config(cfg, path: Path, **changes) -> Path:
    """``cfg`` as a run YAML with ``changes`` (dotted keys) applied; grids stay named (stage4a.grid)."""
    data = cfg.resolved_dict()
    data.update(force=False, synth=None)
    for key, value in changes.items():
        node = data
        *head, last = key.split(".")
        for h in head:
            node = node[h]
        node[last] = value
    path.write_text(yaml.safe_dump(data))
    return path


@dataclass
class EmrRun:
    out: Path
    plan: dict
    logs: dict[str, str]
    workdirs: dict[str, Path]
    s3_to_local: dict[str, Path]
    seconds: dict[str, float]
    worker_killed_during_4c: bool   # killed while the 4c step was still running, after a committed task output


def submit_killing_a_worker(cluster: StandaloneCluster, args: list[str], workdir: Path, log: Path,
                            output_dir: Path, worker: int = 1) -> bool:
    """spark-submit ``args``; when the first task output under ``output_dir``'s temporary folder is committed
    (tasks are running on both workers then), SIGKILL worker ``worker`` with its executors and Python workers
    and start it again. Returns True when the kill happened while the application was still running."""
    proc = spark_submit(cluster, args, workdir, log, wait=False)
    deadline = time.time() + 1200
    killed = False
    while proc.poll() is None and time.time() < deadline:
        if not killed and any(output_dir.parent.glob(f"{output_dir.name}._tmp-*/**/part-*")):
            cluster.kill_worker(worker)
            killed = proc.poll() is None
            cluster.restart_worker(worker)
        time.sleep(0.1)
    rc = proc.wait(timeout=600)
    if rc != 0:
        raise RuntimeError(f"spark-submit failed ({rc}) after a worker was killed; log: {log}\n"
                           f"{log.read_text(errors='replace')[-4000:]}")
    return killed


@pytest.fixture(scope="session")
def emr_run(cluster, dist, debug_config, tmp_path_factory) -> EmrRun:
    submit = load_submit()
    work = tmp_path_factory.mktemp("emr")
    out = work / "out"
    run_yaml = write_run_config(debug_config, work / "run.yaml", output_root=str(out))
    assert yaml.safe_load(run_yaml.read_text())["stage4a"]["grid"] == "grid_small"
    args = submit.build_parser().parse_args(
        ["--config", str(run_yaml), "--s3-prefix", "s3://code-bucket/dhs/run1", "--dist", str(dist.folder),
         "--stages", ",".join(EMR_STAGES), "--set", "logging.progress_seconds=5", "--dry-run"])
    plan = submit.submit(args, out=io.StringIO())
    s3_to_local: dict[str, Path] = {}
    for item in plan["uploads"]:                 # the uploads, to a local "bucket"
        dst = work / "bucket" / item["to"][len("s3://"):]
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(item["from"], dst)
        except OSError:
            shutil.copy2(item["from"], dst)
        s3_to_local[item["to"]] = dst
    logs, workdirs, seconds = {}, {}, {}
    stamps_dir = Path(stage_output_dir(debug_config.model_copy(update={"output_root": str(out)}), "4c", "stamps"))
    killed = False
    for stage, step in zip(EMR_STAGES, plan["AddJobFlowSteps"]["Steps"]):
        wd = fresh_workdir(work / f"container-{stage}", dist.env_dir)
        log = work / f"step-{stage}.log"
        args = emr_step_args(step, cluster, s3_to_local)
        t0 = time.time()
        if stage == "4c":
            killed = submit_killing_a_worker(cluster, args, wd, log, stamps_dir)
        else:
            spark_submit(cluster, args, wd, log)
        seconds[stage] = time.time() - t0
        logs[stage] = log.read_text(errors="replace")
        workdirs[stage] = wd
    return EmrRun(out, plan, logs, workdirs, s3_to_local, seconds, killed)
