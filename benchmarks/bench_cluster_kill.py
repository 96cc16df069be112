"""Stage 4c at 10^5 stamps on a local standalone cluster (two workers), one worker killed mid-run.

    .venv/bin/python benchmarks/bench_cluster_kill.py [--stamps 100000] [--out build/bench_kill] [--partitions 32]

1. Builds the synthetic sky (``configs/debug.yaml``), runs stages 3 and 4a locally and replicates the manifest
   to ``--stamps`` rows (new task ids and seeds, hosts unchanged).
2. Starts a Spark standalone cluster on 127.0.0.1 (``tests/cluster/standalone.py``: one master, two worker
   JVMs with one core each) and submits ``jobs/stage4c_inject.py`` twice with ``spark-submit`` (client mode;
   executors use this checkout's virtual environment):
   * undisturbed: wall time → stamps/s/core = stamps / (wall × cores), and the output bytes per stamp;
   * disturbed: worker 1 (its JVM, executors and Python workers) is SIGKILLed half-way through the
     undisturbed wall time; the job must finish on the surviving worker.
3. Checks rows out = rows in, no duplicated ``task_id``, every ``stamp`` byte-identical to the undisturbed run
   (BLAKE2 digest of each stamp's bytes) and the metrics tables equal column by column.

Prints one line per run and ends with one JSON line. ``stage4c.keep_arrays`` is ``[]`` here (only ``stamp``)
to keep 10^5 stamps at ~5 GB per run; use ``--set 'stage4c.keep_arrays=[arc]'`` to measure another layout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def replicated_manifest(cfg, n: int, path: Path) -> int:
    """The debug manifest replicated to ``n`` rows (task ids ``<id>-rep<k>``, seeds re-hashed), written to
    ``path`` partitioned by ``region_split``."""
    from dhs.sampling.hashing import stable_hash64
    from dhs.stages.common import stage_output_dir

    t = pads.dataset(stage_output_dir(cfg, "4a", "manifests"), format="parquet", partitioning="hive").to_table()
    rows = t.to_pylist()
    rep, k = [], 0
    while len(rep) < n:
        for r in rows:
            if len(rep) == n:
                break
            ids = {"task_id": f"{r['task_id']}-rep{k}", "task_seed": stable_hash64(r["task_seed"], k) if k else r["task_seed"]}
            if r.get("control_of"):
                ids["control_of"] = f"{r['control_of']}-rep{k}"
            rep.append(dict(r, **ids))
        k += 1
    table = pa.Table.from_pylist(rep, schema=t.schema)
    shutil.rmtree(path, ignore_errors=True)
    pads.write_dataset(table, path, format="parquet", partitioning=["region_split"], partitioning_flavor="hive",
                       max_rows_per_group=50_000)
    with open(path / "_stage_config.json", "w") as fh:
        json.dump({"replicated_from": stage_output_dir(cfg, "4a", "manifests"), "rows": n}, fh)
    return table.num_rows


def submit(cluster, cfg_path: Path, manifest: Path, out_root: Path, log: Path, partitions: int,
           overrides: list[str]) -> subprocess.Popen:
    from tests.cluster.standalone import SPARK_SUBMIT, _env

    conf = {"spark.pyspark.python": sys.executable, "spark.pyspark.driver.python": sys.executable,
            "spark.executor.memory": "1g", "spark.task.maxFailures": "8", "spark.sql.shuffle.partitions": "4",
            "spark.ui.enabled": "false"}
    cmd = [str(SPARK_SUBMIT), "--master", cluster.master_url]
    for k, v in conf.items():
        cmd += ["--conf", f"{k}={v}"]
    cmd += [str(REPO / "jobs" / "stage4c_inject.py"), "--config", str(cfg_path),
            "--set", f"output_root={out_root}", "--set", f"stage4c.manifest_path={manifest}",
            "--set", f"stage4c.partitions={partitions}", "--set", "force=true", *sum((["--set", o] for o in overrides), [])]
    env = _env()
    env["PYTHONPATH"] = str(REPO)
    return subprocess.Popen(cmd, stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env)


def stamp_digests(path: Path) -> dict[str, bytes]:
    """task_id → BLAKE2b-128 digest of the stamp bytes (b"" for a null stamp), streamed batch by batch."""
    out: dict[str, bytes] = {}
    ds = pads.dataset(str(path), format="parquet", partitioning="hive")
    for batch in ds.to_batches(columns=["task_id", "stamp"], batch_size=2048):
        for tid, st in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()):
            if tid in out:
                raise AssertionError(f"duplicated task_id {tid!r} in {path}")
            out[tid] = hashlib.blake2b(st, digest_size=16).digest() if st is not None else b""
    return out


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stamps", type=float, default=100_000)
    p.add_argument("--out", default="build/bench_kill")
    p.add_argument("--partitions", type=int, default=32)
    p.add_argument("--kill-at", type=float, default=0.5, help="kill after this fraction of the undisturbed wall time")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    n = int(args.stamps)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    from dhs.cli import run_stages
    from dhs.config import load_config
    from dhs.stages.common import stage_output_dir
    from tests.cluster.compare import assert_same_output
    from tests.cluster.standalone import standalone_cluster

    overrides = ["stage4c.keep_arrays=[]", *args.overrides]
    base = [f"survey_root={out / 'sky'}", f"output_root={out / 'pipeline'}", "spark.show_progress=false"]
    cfg = load_config(REPO / "configs" / "debug.yaml", base + overrides)
    run_stages(cfg, ["3", "4a"])
    manifest = out / "manifest"
    rows = replicated_manifest(cfg, n, manifest)
    cfg_path = out / "run.yaml"
    data = cfg.resolved_dict()
    data["synth"] = None
    cfg_path.write_text(yaml.safe_dump(data))
    result: dict = {"stamps": rows, "partitions": args.partitions, "workers": 2, "cores": 2}
    with standalone_cluster(out / "cluster", n_workers=2, cores=1, memory="2500m") as cluster:
        runs = {}
        for name in ("undisturbed", "killed"):
            root = out / f"run_{name}"
            shutil.rmtree(root, ignore_errors=True)
            log = out / f"submit_{name}.log"
            t0 = time.perf_counter()
            proc = submit(cluster, cfg_path, manifest, root, log, args.partitions, overrides)
            killed_at = None
            if name == "killed":
                target = args.kill_at * runs["undisturbed"]["seconds"]
                while proc.poll() is None and time.perf_counter() - t0 < target:
                    time.sleep(0.5)
                if proc.poll() is None:
                    cluster.kill_worker(1)
                    killed_at = time.perf_counter() - t0
            rc = proc.wait()
            wall = time.perf_counter() - t0
            if rc != 0:
                print(log.read_text(errors="replace")[-4000:])
                raise SystemExit(f"[bench_kill] {name}: spark-submit failed ({rc}); log {log}")
            c = cfg.model_copy(update={"output_root": str(root)})
            stamps_dir = Path(stage_output_dir(c, "4c", "stamps"))
            metrics_dir = Path(stage_output_dir(c, "4c", "metrics"))
            meta = json.loads((stamps_dir / "_stage_config.json").read_text())
            runs[name] = {"seconds": round(wall, 1), "killed_at_s": None if killed_at is None else round(killed_at, 1),
                          "rows_in": meta["counts"]["rows_in"], "rows_out": meta["counts"]["rows_out"],
                          "stamps_bytes": dir_bytes(stamps_dir), "metrics_bytes": dir_bytes(metrics_dir),
                          "stamps_dir": str(stamps_dir), "metrics_dir": str(metrics_dir),
                          "executor_lost": "lost" in log.read_text(errors="replace").lower()}
            r = runs[name]
            print(f"[bench_kill] {name}: {rows} stamps in {wall:.1f} s on 2 cores = {rows / (wall * 2):.1f} "
                  f"stamps/s/core (incl. ~20 s fixed cost); stamps/ {r['stamps_bytes'] / rows:.0f} B/stamp, metrics/ "
                  f"{r['metrics_bytes'] / rows:.0f} B/row" + (f"; worker 1 killed at {killed_at:.0f} s" if killed_at else ""),
                  flush=True)
        result["runs"] = runs
    a, b = runs["undisturbed"], runs["killed"]
    da, db = stamp_digests(Path(a["stamps_dir"])), stamp_digests(Path(b["stamps_dir"]))
    checks = {
        "rows_out_equals_rows_in": a["rows_in"] == a["rows_out"] == b["rows_in"] == b["rows_out"] == rows == len(db),
        "no_duplicates": len(db) == b["rows_out"],
        "stamps_identical": da == db,
        "worker_killed": b["killed_at_s"] is not None,
    }
    assert_same_output(Path(a["metrics_dir"]), Path(b["metrics_dir"]), "metrics")
    checks["metrics_identical"] = True
    result["checks"] = checks
    result["stamps_per_s_per_core"] = round(rows / (a["seconds"] * 2), 2)
    result["bytes_per_stamp"] = round(a["stamps_bytes"] / rows, 1)
    print(f"[bench_kill] checks: {checks}")
    print(json.dumps(result))
    for name in runs:
        shutil.rmtree(out / f"run_{name}", ignore_errors=True)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
