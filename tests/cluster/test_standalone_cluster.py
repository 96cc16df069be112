"""Every stage through spark-submit on a standalone cluster (2 worker JVMs on 127.0.0.1) with the packed
environment: outputs identical to the local-mode run; a worker killed during stage 4c changes nothing."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from dhs.io.outputs import STAGE_OUTPUT_KINDS, stage_output_dir

from .compare import assert_same_output, read_output
from .standalone import spark_submit, standalone_cluster

REPO = Path(__file__).resolve().parents[2]
JOBS = {"3": "stage3_parent.py", "4a": "stage4a_manifest.py", "4c": "stage4c_inject.py",
        "4d": "stage4d_completeness.py"}

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def test_install_step_gives_dhs_without_pyspark(packed_env):
    """The Dockerfile's install step (docker/install-dhs.sh) yields a working dhs without its own PySpark."""
    py = packed_env.parent / "env" / "bin" / "python"
    code = ("import importlib.util as u, dhs.config, dhs.core, numpy, scipy, astropy, h5py, xxhash; "
            "print(u.find_spec('pyspark') is None, u.find_spec('py4j') is None)")
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]
    assert packed_env.stat().st_size > 1_000_000


def _write_config(cfg, out_root: Path, path: Path) -> Path:
    data = cfg.resolved_dict()
    data["output_root"] = str(out_root)
    data["force"] = False
    data["synth"] = None
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with standalone_cluster(tmp_path_factory.mktemp("standalone")) as c:
        yield c


@pytest.fixture(scope="module")
def cluster_run(cluster, packed_env, debug_config, stage4d_result, tmp_path_factory):
    """All pipeline stages submitted to the cluster; the local run (conftest fixtures) is the reference."""
    work = tmp_path_factory.mktemp("cluster-run")
    out = work / "out"
    cfg_path = _write_config(debug_config, out, work / "run.yaml")
    for st, job in JOBS.items():
        spark_submit(cluster, str(REPO / "jobs" / job), ["--config", str(cfg_path)], packed_env,
                     work / f"submit-{st}.log")
    return out, cfg_path


@pytest.mark.parametrize("stage", list(JOBS))
def test_cluster_outputs_equal_local(stage, cluster_run, debug_config):
    out, _ = cluster_run
    local = debug_config
    cluster_cfg = local.model_copy(update={"output_root": str(out)})
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


def test_worker_killed_during_stage4c(cluster, cluster_run, packed_env, debug_config, tmp_path):
    """Kill one worker (JVM, executors, Python workers) while 4c runs: no lost or duplicated task, same stamps."""
    out_ok, _ = cluster_run
    out = tmp_path / "out"
    manifest_rel = Path(stage_output_dir(debug_config.model_copy(update={"output_root": "."}), "4a", "manifests"))
    shutil.copytree(out_ok / manifest_rel, out / manifest_rel)
    cfg_path = _write_config(debug_config, out, tmp_path / "run.yaml")
    log = tmp_path / "submit-4c.log"
    proc = spark_submit(cluster, str(REPO / "jobs" / JOBS["4c"]), ["--config", str(cfg_path),
                        "--set", "stage4c.partitions=16"], packed_env, log, wait=False)
    deadline = time.time() + 600
    killed = False
    stamps_dir = Path(stage_output_dir(debug_config.model_copy(update={"output_root": str(out)}), "4c", "stamps"))
    while proc.poll() is None and time.time() < deadline:
        # the first committed task output of 4c's write job: tasks are running on both workers now
        if not killed and any(stamps_dir.parent.glob(f"{stamps_dir.name}._tmp-*/**/part-*")):
            cluster.kill_worker(1)
            killed = True
        time.sleep(0.1)
    rc = proc.wait(timeout=600)
    assert killed, "stage 4c finished before a worker could be killed"
    assert rc == 0, log.read_text()[-3000:]
    text = log.read_text(errors="replace")
    assert "Lost executor" in text or "Executor lost" in text or "removed" in text.lower(), text[-3000:]
    ref_cfg = debug_config
    got_cfg = debug_config.model_copy(update={"output_root": str(out)})
    for kind in ("stamps", "metrics"):
        got = read_output(Path(stage_output_dir(got_cfg, "4c", kind)))
        ids = got.column("task_id").to_pylist()
        assert len(ids) == len(set(ids)), "duplicated task_id after executor loss"
        assert_same_output(Path(stage_output_dir(ref_cfg, "4c", kind)), Path(stage_output_dir(got_cfg, "4c", kind)), kind)
