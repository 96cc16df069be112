"""Stage 4c throughput on the synthetic sky (stamps/s/core), with the time split into read, cutout,
render, metrics and write.

    .venv/bin/python benchmarks/bench_stage4c.py [--out build/bench4c] [--replicate 8] [--skip-spark]

1. Builds the synthetic sky (if absent) and runs stages 3 and 4a of ``configs/debug.yaml`` on it; the
   manifest is replicated ``--replicate`` times (new task ids and seeds) for a longer measurement.
2. In-process split, one core, no Spark, CPU time (robust to other jobs on the machine), Arrow batches of ``stage4c.arrow_batch_rows`` rows as in the stage
   (sorted by brick): the time to read a brick's files the first time (read), to cut the stamps (cutout), to
   render the arcs (render: one render_lensed_batch call per batch, incl. PSF and optional noise), to compute
   the metrics (metrics), to convert Arrow batches to and from Python rows (arrow) and to encode the arrays
   and write the Parquet batch (write).
3. End to end in local Spark (``stage4c.run``): wall time of the full manifest and of a 1-row manifest;
   the difference removes Spark's fixed per-job cost. stamps/s/core = rows / (seconds × cores).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def _manifest(cfg, replicate: int, out: Path) -> tuple[str, int]:
    from dhs.sampling.hashing import stable_hash64
    from dhs.stages.common import stage_output_dir

    t = pads.dataset(stage_output_dir(cfg, "4a", "manifests"), format="parquet", partitioning="hive").to_table()
    rows = t.to_pylist()
    rep = []
    for k in range(replicate):
        for r in rows:
            rep.append(dict(r, task_id=f"{r['task_id']}-rep{k}",
                            task_seed=stable_hash64(r["task_seed"], k) if k else r["task_seed"]))
    table = pa.Table.from_pylist(rep, schema=t.schema)
    path = out / "manifest_bench"
    shutil.rmtree(path, ignore_errors=True)
    pads.write_dataset(table, path, format="parquet", partitioning=["region_split"], partitioning_flavor="hive")
    one = out / "manifest_one"
    shutil.rmtree(one, ignore_errors=True)
    pads.write_dataset(table.slice(0, 1), one, format="parquet", partitioning=["region_split"],
                       partitioning_flavor="hive")
    return str(path), table.num_rows


def in_process_split(cfg, manifest: str) -> dict:
    """Single-core CPU time (time.process_time) of the per-row work, split into read/cutout/render/metrics/
    arrow/write."""
    from dhs.injection.schema import output_schema
    from dhs.injection.task import inject_batch
    from dhs.stages.stage4c import rows_to_batch
    from dhs.survey.coadd import CoaddStore
    from dhs.survey.layout import BANDS

    t = pads.dataset(manifest, format="parquet", partitioning="hive").to_table()
    t = t.sort_by([("brickname", "ascending"), ("task_id", "ascending")])
    settings = cfg.stage4c
    schema = output_schema(t.schema, settings.keep_arrays, settings.stamp_npz)
    store = CoaddStore(cfg.survey_root, cache_bytes=settings.cache_bytes)
    bank = None
    if settings.cosmos_bank:  # the worker's bank, as the stage opens it (COSMOS rows need it)
        from dhs.stages.stage4c import executor_bank

        bank = executor_bank(settings.cosmos_bank, cfg.s3.endpoint_url, cfg.s3.region)
    timings = {"read": 0.0, "cutout": 0.0, "render": 0.0, "metrics": 0.0, "encode": 0.0, "arrow": 0.0,
               "write": 0.0}
    seen = set()
    out_rows = []
    tmp = tempfile.mkdtemp(prefix="bench4c-")
    writer = None
    n_ok = 0
    t_all = time.perf_counter()
    cpu_all = time.process_time()
    for batch in t.to_batches(max_chunksize=settings.arrow_batch_rows):
        t0 = time.process_time()
        rows = batch.to_pylist()
        timings["arrow"] += time.process_time() - t0
        cuts = []
        for row in rows:
            b = row["brickname"]
            if b not in seen:
                t0 = time.process_time()
                for prod in ("image", "invvar", "psfsize"):
                    for band in BANDS:
                        with contextlib.suppress(OSError):      # bad files are reported by the cutout
                            store.plane(b, prod, band)
                with contextlib.suppress(OSError):
                    store.plane(b, "maskbits")
                timings["read"] += time.process_time() - t0
                seen.add(b)
            t0 = time.process_time()
            cuts.append(store.cutout(row["ra"], row["dec"], int(row["stamp_size"] or 64), b))
            timings["cutout"] += time.process_time() - t0
        for res in inject_batch(rows, cuts, bank, settings, timings):     # the arcs of a batch together
            n_ok += res["cutout_ok"]
            out_rows.append(res)
        t0 = time.process_time()
        rb = rows_to_batch(out_rows, schema)
        timings["arrow"] += time.process_time() - t0
        t0 = time.process_time()
        if writer is None:
            writer = pq.ParquetWriter(os.path.join(tmp, "part.parquet"), schema, compression="zstd")
        writer.write_batch(rb)
        out_rows = []
        timings["write"] += time.process_time() - t0
    if writer is not None:
        writer.close()
    total = time.perf_counter() - t_all
    cpu = time.process_time() - cpu_all
    shutil.rmtree(tmp, ignore_errors=True)
    # memory of one full Arrow batch: peak of the Python/NumPy allocations while it is injected
    first = t.slice(0, settings.arrow_batch_rows).to_pylist()
    cuts = [store.cutout(r["ra"], r["dec"], int(r["stamp_size"] or 64), r["brickname"]) for r in first]
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    inject_batch(first, cuts, bank, settings)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    timings["write"] += timings.pop("encode")
    n = t.num_rows
    return {"rows": n, "ok": n_ok, "seconds": total, "stamps_per_s_1core": n / total,
            "batch_rows": len(first), "batch_peak_mb": peak / 2**20,
            "cpu_seconds": cpu, "stamps_per_cpu_s": n / cpu,
            "ms_per_stamp": {k: 1e3 * v / n for k, v in timings.items()},
            "ms_other": 1e3 * (cpu - sum(timings.values())) / n}


def spark_end_to_end(cfg, manifest: str, one: str, n: int, out: Path) -> dict:
    from bench_scale import TreeSampler

    from dhs.spark import get_spark
    from dhs.stages import stage4c

    spark = get_spark(cfg.spark)
    cores = int(spark.sparkContext.defaultParallelism)
    spark.range(cores).count()  # (the JVM and its first job started before the timed runs, whatever ran before)
    res = {}
    for name, path in (("one", one), ("full", manifest)):
        s = cfg.stage4c.model_copy(update={"manifest_path": path})
        c = cfg.model_copy(update={"stage4c": s, "output_root": str(out / f"out_{name}"), "force": True})
        t0 = time.perf_counter()
        with TreeSampler() as sampler:  # (peak RSS of the Python workers: bank, Arrow batch, render scratch)
            stage4c.run(spark, c)
        res[name] = time.perf_counter() - t0
    marginal = max(res["full"] - res["one"], 1e-9)
    return {"cores": cores, "seconds_full": res["full"], "seconds_one_row": res["one"],
            "pyworker_peak_rss_mb": sampler.peak["pyworker_max_mb"],
            "stamps_per_s_per_core_incl_fixed": n / (res["full"] * cores),
            "stamps_per_s_per_core_marginal": (n - 1) / (marginal * cores)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="build/bench4c")
    p.add_argument("--replicate", type=int, default=8)
    p.add_argument("--skip-spark", action="store_true", help="only the in-process split")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. --set 'stage4c.keep_arrays=[arc]' (production default)")
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    from dhs.cli import run_stages
    from dhs.config import load_config

    cfg = load_config(REPO / "configs" / "debug.yaml",
                      [f"survey_root={out / 'sky'}", f"output_root={out / 'pipeline'}", "spark.show_progress=false",
                       *args.overrides])
    run_stages(cfg, ["3", "4a"])
    manifest, n = _manifest(cfg, args.replicate, out)
    split = in_process_split(cfg, manifest)
    print(f"[bench4c] in-process, 1 core: {split['rows']} rows ({split['ok']} ok) in {split['seconds']:.1f} s "
          f"= {split['stamps_per_s_1core']:.0f} stamps/s; {split['cpu_seconds']:.1f} CPU s = "
          f"{split['stamps_per_cpu_s']:.0f} stamps per CPU second")
    for k, v in split["ms_per_stamp"].items():
        print(f"[bench4c]   {k:8s} {v:7.3f} ms/stamp")
    print(f"[bench4c]   other    {split['ms_other']:7.3f} ms/stamp")
    print(f"[bench4c] one Arrow batch of {split['batch_rows']} rows: peak {split['batch_peak_mb']:.0f} MB of "
          "Python/NumPy allocations while injecting it")
    result = {"in_process": split}
    if not args.skip_spark:
        e2e = spark_end_to_end(cfg, manifest, str(out / "manifest_one"), n, out)
        print(f"[bench4c] Spark local[{e2e['cores']}]: {n} rows in {e2e['seconds_full']:.1f} s "
              f"(1-row job {e2e['seconds_one_row']:.1f} s): {e2e['stamps_per_s_per_core_incl_fixed']:.0f} "
              f"stamps/s/core incl. fixed cost, {e2e['stamps_per_s_per_core_marginal']:.0f} marginal")
        print(f"[bench4c] largest Python worker: peak RSS {e2e['pyworker_peak_rss_mb']:.0f} MB "
              f"(stage4c.cache_bytes = {cfg.stage4c.cache_bytes}, bank {cfg.stage4c.cosmos_bank or 'none'})")
        result["spark"] = e2e
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
