"""How stages 3, 4a and 4d scale with the row count in local Spark: time, memory, output per size.

    .venv/bin/python benchmarks/bench_scale.py [--sizes 1e5,1e6,1e7] [--stages 3,4a,4d] [--out build/bench_scale]

Rows are sweep objects for stage 3, manifest rows out for stage 4a (train tier, prior draws, 2 replicates,
control fraction 0.5; ``stage4a.max_rows`` raised to fit) and 4c metrics rows for stage 4d. Inputs are
fabricated in the real schemas by ``benchmarks/scale_inputs.py`` (not timed): sweep FITS files of up to 10^6
objects (one 5°×5° tile each) with the brick summary for stage 3; parent LRGs over 10^4–10^5 real bricks with
a log-normal number of hosts per brick for stage 4a; metrics with controls, failed cutouts and nulls for 4d.

Each stage runs in its own Python process and Spark session (``spark.master``, default ``local[2]``): a
warm-up run, then a tiny input (``--tiny``, default 2,000 rows: the fixed cost of a run), then each size.
Per run it prints:

* wall seconds, CPU seconds of the whole process tree (driver Python, JVM, Python workers), and the
  marginal wall and CPU time per row, ``(t(N) − t(tiny)) / (N − tiny)``;
* peak memory (RSS, MB, sampled every 0.1 s): the driver's Python process, the JVM (in local mode it hosts
  the driver *and* the executors), the largest single Python worker and all Python workers together;
* ``driver_mb``: bytes the executors sent to the driver (sum of Spark's per-stage ``resultSize``: what
  ``collect``/``toPandas``/``toArrow`` bring back) — the driver-side growth this benchmark watches;
* output bytes on disk.

It ends with the ratio of the marginal time per row at the largest to the smallest size (target ≤ 1.5),
and one JSON line with every figure. Measure on an otherwise idle machine when the figures matter: the
CPU-time ratio is the less noisy one on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

STAGES = ("3", "4a", "4d")
VARIANT = "v2_baseline_dr10"
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------ process-tree sampling
def _proc_table() -> dict[int, tuple[int, str, int, float]]:
    """pid → (ppid, command line, RSS bytes, CPU seconds incl. reaped children) for every process."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
            with open(f"/proc/{d}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        ppid = int(rest[1])
        cpu = sum(int(x) for x in rest[11:15]) / TICK      # utime, stime, cutime, cstime
        rss = int(rest[21]) * PAGE
        out[int(d)] = (ppid, cmd, rss, cpu)
    return out


def _descendants(table: dict, root: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for pid, (ppid, *_rest) in table.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        for c in kids.get(p, []):
            out.append(c)
            todo.append(c)
    return out


class TreeSampler:
    """Samples RSS of the driver, the JVM and the Python workers, and the CPU time of the process tree."""

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self.me = os.getpid()
        self._stop = threading.Event()
        self.peak = {"driver_py_mb": 0.0, "jvm_mb": 0.0, "pyworker_max_mb": 0.0, "pyworkers_mb": 0.0}
        self._thread: threading.Thread | None = None
        self._cpu_dead = 0.0
        self._last_cpu: dict[int, float] = {}

    def cpu_seconds(self) -> float:
        """CPU seconds of this process and all its descendants (alive now or seen alive before)."""
        table = _proc_table()
        pids = [self.me, *_descendants(table, self.me)]
        alive = {p: table[p][3] for p in pids if p in table}
        gone = [p for p in self._last_cpu if p not in alive]
        self._cpu_dead += sum(self._last_cpu.pop(p) for p in gone)
        self._last_cpu.update(alive)
        return self._cpu_dead + sum(alive.values())

    def _sample(self) -> None:
        table = _proc_table()
        desc = _descendants(table, self.me)
        jvm = sum(table[p][2] for p in desc if "java" in table[p][1].split(" ")[0])
        workers = [table[p][2] for p in desc if "pyspark.daemon" in table[p][1] or "pyspark.worker" in table[p][1]]
        vals = {"driver_py_mb": table[self.me][2], "jvm_mb": jvm, "pyworker_max_mb": max(workers, default=0),
                "pyworkers_mb": sum(workers)}
        for k, v in vals.items():
            self.peak[k] = max(self.peak[k], v / 1e6)
        alive = {p: table[p][3] for p in [self.me, *desc] if p in table}
        gone = [p for p in self._last_cpu if p not in alive]
        self._cpu_dead += sum(self._last_cpu.pop(p) for p in gone)
        self._last_cpu.update(alive)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._sample()
            except (OSError, KeyError, ValueError):
                pass

    def __enter__(self) -> TreeSampler:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


# ------------------------------------------------------------------------------- Spark REST figures
def _stages(spark) -> dict[int, dict]:
    """Spark's per-stage figures from the UI's REST API (retried: a loaded machine answers slowly)."""
    url = spark.sparkContext.uiWebUrl
    app = spark.sparkContext.applicationId
    for attempt in range(5):
        try:
            with urllib.request.urlopen(f"{url}/api/v1/applications/{app}/stages", timeout=300) as r:
                data = json.loads(r.read())
            return {(s["stageId"], s["attemptId"]): s for s in data}
        except OSError:
            if attempt == 4:
                raise
            time.sleep(10)
    return {}


def _dir_bytes(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


# ------------------------------------------------------------------------------------ one stage run
def _config(out: Path, stage: str, rows: int, master: str, extra: dict | None = None):
    from dhs.config import RunConfig

    data = {
        "survey_root": str(out / "sky"), "output_root": str(out / "pipeline"), "variant": VARIANT,
        "experiment_id": "scale", "seed": 1234, "force": True,
        "spark": {"master": master, "shuffle_partitions": 8, "show_progress": False,
                  "conf": {"spark.driver.memory": "2g", "spark.ui.retainedStages": "5000",
                           "spark.ui.retainedJobs": "5000", "spark.sql.ui.retainedExecutions": "200"}},
        "stage3": {"read_chunk_rows": 100_000, "region_max_bricks": 64, "healpix_nside": 32},
        "stage4a": {"tier": "train", "parameter_source": "priors", "replicates": 2, "control_fraction": 0.5,
                    "psf_bins": 4, "depth_bins": 4, "max_rows": max(5_000_000, 2 * rows)},
        "stage4d": {"report": False, "audit": {"enabled": False}, "gallery": {"enabled": False}},
    }
    for k, v in (extra or {}).items():
        data[k].update(v)
    return RunConfig.model_validate(data)


def fabricate(stage: str, out: Path, rows: int) -> dict:
    """Write the input of ``stage`` with ``rows`` rows (sweep objects / manifest rows out / metrics rows) in a
    child process, so that the memory the fabrication used is not counted in the driver's peak."""
    cmd = [sys.executable, __file__, "--fabricate", stage, "--rows", str(int(rows)), "--out", str(out)]
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def fabricate_here(stage: str, out: Path, rows: int) -> dict:
    """fabricate() in this process."""
    import scale_inputs as si

    from dhs.stages.common import stage_output_dir

    cfg = _config(out, stage, rows, "local[1]")
    if stage == "3":
        return si.write_sweeps(str(out / "sky"), rows)
    if stage == "4a":
        hosts = max(10, int(round(rows * 0.75)))      # 2 replicates, control fraction 0.5: rows ≈ 4/3 hosts
        return si.write_parent(stage_output_dir(cfg, "3", "parent"), hosts, variant=VARIANT,
                               variants=list(cfg.stage3.variants))
    if stage == "4d":
        return si.write_metrics(stage_output_dir(cfg, "4c", "metrics"), rows)
    raise ValueError(stage)


OUTPUTS = {"3": [("3", "parent"), ("3", "regions")], "4a": [("4a", "manifests")], "4d": [("4d", "completeness")]}


def run_one(spark, stage: str, out: Path, rows: int, master: str) -> dict:
    """Run ``stage`` once on the fabricated input of ``rows`` rows and measure it."""
    import importlib

    from dhs.stages import STAGES as MODULES
    from dhs.stages.common import stage_output_dir

    cfg = _config(out, stage, rows, master)
    module = importlib.import_module(MODULES[stage])
    before = _stages(spark)
    sampler = TreeSampler()
    cpu0 = sampler.cpu_seconds()
    t0 = time.perf_counter()
    with sampler:
        res = module.run(spark, cfg)
    wall = time.perf_counter() - t0
    cpu = sampler.cpu_seconds() - cpu0
    after = _stages(spark)
    new = [s for k, s in after.items() if k not in before]
    result_bytes = sum(int(s.get("resultSize", 0)) for s in new)
    out_bytes = sum(_dir_bytes(stage_output_dir(cfg, st, kind)) for st, kind in OUTPUTS[stage])
    return {"stage": stage, "rows": int(rows), "rows_in": int(res.rows_in), "rows_out": int(res.rows_out),
            "seconds": round(wall, 3), "cpu_seconds": round(cpu, 3),
            "driver_mb": round(result_bytes / 1e6, 3), "spark_stages": len(new),
            "output_bytes": int(out_bytes), **{k: round(v, 1) for k, v in sampler.peak.items()}}


def stage_worker(stage: str, sizes: list[int], tiny: int, out: Path, master: str, keep: bool) -> list[dict]:
    """One stage in this process: the tiny run, then every size; inputs fabricated before each run."""
    from dhs.spark import get_spark

    spark = get_spark(_config(out, stage, tiny, master).spark)
    spark.sparkContext.setLogLevel("ERROR")
    results = []
    for i, rows in enumerate([tiny, tiny, *sizes]):
        t0 = time.perf_counter()
        info = fabricate(stage, out, rows)
        t_fab = time.perf_counter() - t0
        r = run_one(spark, stage, out, rows, master)
        r["fabricated"] = info
        r["fabricate_seconds"] = round(t_fab, 1)
        if stage == "4a":
            r["rows"] = r["rows_out"]       # manifest rows out
        elif stage == "4d":
            r["rows"] = r["rows_in"]
        else:
            r["rows"] = r["rows_in"]        # sweep objects read
        if i:                               # the first run warms the JVM and the Python workers up
            results.append(r)
        print(f"[bench_scale] stage {stage}{' (warm-up)' if not i else ''}: {r['rows']:>10d} rows {r['seconds']:8.1f} s wall "
              f"{r['cpu_seconds']:8.1f} s cpu | peak MB driver-py {r['driver_py_mb']:.0f} jvm {r['jvm_mb']:.0f} "
              f"pyworker {r['pyworker_max_mb']:.0f} (all {r['pyworkers_mb']:.0f}) | to driver {r['driver_mb']:.2f} MB"
              f" | out {r['output_bytes'] / 1e6:.1f} MB", flush=True)
        if not keep:
            shutil.rmtree(out / "pipeline", ignore_errors=True)
            shutil.rmtree(out / "sky", ignore_errors=True)
    spark.stop()
    return results


def summarize(results: list[dict]) -> dict:
    """Marginal time per row against the tiny run, per size, and the growth ratio largest/smallest."""
    tiny, runs = results[0], results[1:]
    prev = tiny
    for r in runs:
        dn = max(r["rows"] - tiny["rows"], 1)
        r["marginal_s_per_row"] = (r["seconds"] - tiny["seconds"]) / dn
        r["marginal_cpu_s_per_row"] = (r["cpu_seconds"] - tiny["cpu_seconds"]) / dn
        r["s_per_row"] = r["seconds"] / max(r["rows"], 1)
        # slope from the previous size: the marginal cost without the tiny run, whose fixed cost a loaded
        # machine makes noisy
        dp = max(r["rows"] - prev["rows"], 1)
        r["slope_s_per_row"] = (r["seconds"] - prev["seconds"]) / dp
        r["slope_cpu_s_per_row"] = (r["cpu_seconds"] - prev["cpu_seconds"]) / dp
        prev = r
    out = {"tiny": tiny, "runs": runs}
    if len(runs) >= 2:
        out["growth_wall"] = runs[-1]["marginal_s_per_row"] / runs[0]["marginal_s_per_row"]
        out["growth_cpu"] = runs[-1]["marginal_cpu_s_per_row"] / runs[0]["marginal_cpu_s_per_row"]
        out["growth_sizes"] = [runs[0]["rows"], runs[-1]["rows"]]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1e5,1e6,1e7", help="comma-separated row counts (default 1e5,1e6,1e7)")
    p.add_argument("--stages", default=",".join(STAGES), help="comma-separated stages (default 3,4a,4d)")
    p.add_argument("--tiny", type=float, default=2000, help="rows of the fixed-cost run (default 2000)")
    p.add_argument("--out", default="build/bench_scale")
    p.add_argument("--master", default="local[2]")
    p.add_argument("--keep", action="store_true", help="keep inputs and outputs of the last size")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--fabricate", help=argparse.SUPPRESS)
    p.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.fabricate:
        print(json.dumps(fabricate_here(args.fabricate, Path(args.out), args.rows), default=str), flush=True)
        return 0
    sizes = [int(float(s)) for s in args.sizes.split(",") if s.strip()]
    out = Path(args.out).resolve()
    if args.worker:
        res = stage_worker(args.worker, sizes, int(args.tiny), out / f"stage{args.worker}", args.master, args.keep)
        print("BENCH_SCALE_RESULT " + json.dumps(res), flush=True)
        return 0
    env = dict(os.environ)
    env.setdefault("MALLOC_MMAP_THRESHOLD_", "67108864")
    env.setdefault("MALLOC_TRIM_THRESHOLD_", "268435456")
    summary: dict[str, dict] = {}
    for stage in [s.strip() for s in args.stages.split(",") if s.strip()]:
        if stage not in STAGES:
            p.error(f"unknown stage {stage!r}; choose from {STAGES}")
        cmd = [sys.executable, __file__, "--worker", stage, "--sizes", args.sizes, "--tiny", str(args.tiny),
               "--out", str(out), "--master", args.master] + (["--keep"] if args.keep else [])
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
        found = []
        for ln in proc.stdout:                   # stream the worker's lines as each run finishes
            if ln.startswith("BENCH_SCALE_RESULT "):
                found.append(ln)
            else:
                print(ln, end="", flush=True)
        proc.wait()
        if proc.returncode != 0 or not found:
            print(f"[bench_scale] stage {stage} failed (exit {proc.returncode})", flush=True)
            return 1
        s = summarize(json.loads(found[-1].split(" ", 1)[1]))
        summary[stage] = s
        tiny = s["tiny"]
        print(f"[bench_scale] stage {stage}: fixed cost (tiny run, {tiny['rows']} rows) {tiny['seconds']:.1f} s wall, "
              f"{tiny['cpu_seconds']:.1f} s cpu", flush=True)
        for r in s["runs"]:
            print(f"[bench_scale] stage {stage}: {r['rows']:>10d} rows: {r['s_per_row'] * 1e6:8.2f} us/row overall, "
                  f"marginal {r['marginal_s_per_row'] * 1e6:8.2f} us/row wall, {r['marginal_cpu_s_per_row'] * 1e6:8.2f} "
                  f"us/row cpu; slope from the previous size {r['slope_s_per_row'] * 1e6:8.2f} us/row wall, "
                  f"{r['slope_cpu_s_per_row'] * 1e6:8.2f} us/row cpu; output {r['output_bytes'] / max(r['rows'], 1):.1f} "
                  f"B/row", flush=True)
        if "growth_wall" in s:
            a, b = s["growth_sizes"]
            print(f"[bench_scale] stage {stage}: marginal time per row {a} -> {b} rows grows x{s['growth_wall']:.2f} "
                  f"(wall), x{s['growth_cpu']:.2f} (cpu); target <= 1.5", flush=True)
    keys = ("rows", "seconds", "cpu_seconds", "s_per_row", "marginal_s_per_row", "marginal_cpu_s_per_row",
            "slope_s_per_row", "slope_cpu_s_per_row",
            "driver_py_mb", "jvm_mb", "pyworker_max_mb", "pyworkers_mb", "driver_mb", "output_bytes")
    line = {st: {"runs": [{k: r[k] for k in keys} for r in s["runs"]],
                 "tiny": {k: s["tiny"][k] for k in ("rows", "seconds", "cpu_seconds")},
                 "growth_wall": s.get("growth_wall"), "growth_cpu": s.get("growth_cpu")}
            for st, s in summary.items()}
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
