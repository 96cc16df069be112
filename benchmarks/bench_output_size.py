"""Stage 4c output bytes per stamp for each array column (stamp, arc, invvar, maskbits) and for the metrics.

    .venv/bin/python benchmarks/bench_output_size.py [--stamps 2000] [--out build/bench_size]

Runs stages 3 and 4a of ``configs/debug.yaml`` on the synthetic sky, replicates the manifest to ``--stamps``
rows and runs stage 4c in local Spark with every optional array kept (``keep_arrays: [arc, invvar,
maskbits]``). From the Parquet footers it prints the compressed bytes per row of each column of
``stamps/`` (zstd, as written), the raw array size, and the bytes per row of ``metrics/``; ends with one
JSON line, with the peak RSS of the driver, the JVM and the Python workers during stage 4c. Injections and
controls are mixed as in the manifest (controls have no ``arc``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def column_bytes(folder: Path) -> tuple[int, dict[str, int]]:
    """(rows, {column: compressed bytes}) over every Parquet file under ``folder``."""
    rows, out = 0, {}
    for f in folder.rglob("*.parquet"):
        md = pq.ParquetFile(f).metadata
        rows += md.num_rows
        for g in range(md.num_row_groups):
            rg = md.row_group(g)
            for c in range(rg.num_columns):
                col = rg.column(c)
                name = col.path_in_schema
                out[name] = out.get(name, 0) + col.total_compressed_size
    return rows, out


def per_row_zstd(folder: Path, columns: list[str], level: int, limit: int = 2000) -> dict[str, float]:
    """Mean bytes of each array value compressed on its own with zstd at ``level`` (stage4c.zstd_level): the
    size without the redundancy between neighbouring rows that a replicated manifest (or a brick with many
    tasks on one host) gives Parquet's pages."""
    import pyarrow as pa
    import pyarrow.dataset as pads

    codec = pa.Codec("zstd", compression_level=level)

    ds = pads.dataset(str(folder), format="parquet", partitioning="hive")
    have = [c for c in columns if c in ds.schema.names]
    tot = dict.fromkeys(have, 0)
    cnt = dict.fromkeys(have, 0)
    for batch in ds.to_batches(columns=have, batch_size=256):
        for c in have:
            for v in batch.column(c).to_pylist():
                if v is not None and cnt[c] < limit:
                    tot[c] += len(codec.compress(v, asbytes=True))
                    cnt[c] += 1
    return {c: tot[c] / cnt[c] for c in have if cnt[c]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stamps", type=float, default=2000)
    p.add_argument("--out", default="build/bench_size")
    p.add_argument("--from-existing", action="store_true", help="measure the output of an earlier run in --out")
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    from bench_cluster_kill import replicated_manifest
    from bench_scale import TreeSampler

    from dhs.cli import run_stages
    from dhs.config import load_config
    from dhs.stages.common import stage_output_dir

    cfg = load_config(REPO / "configs" / "debug.yaml",
                      [f"survey_root={out / 'sky'}", f"output_root={out / 'pipeline'}", "spark.show_progress=false",
                       "stage4c.keep_arrays=[arc,invvar,maskbits]", "force=true"])
    manifest = out / "manifest"
    c = cfg.model_copy(update={"stage4c": cfg.stage4c.model_copy(update={"manifest_path": str(manifest)})})
    peak: dict = {}
    if not args.from_existing:
        run_stages(cfg, ["3", "4a"])
        replicated_manifest(cfg, int(args.stamps), manifest)
        with TreeSampler() as sampler:
            run_stages(c, ["4c"])
        peak = {k: round(v, 1) for k, v in sampler.peak.items()}
        print(f"[bench_size] stage 4c peak RSS MB: driver-py {peak['driver_py_mb']:.0f}, jvm {peak['jvm_mb']:.0f}, "
              f"largest Python worker {peak['pyworker_max_mb']:.0f} (all {peak['pyworkers_mb']:.0f}); "
              f"stage4c.cache_bytes = {cfg.stage4c.cache_bytes}")
    rows, cols = column_bytes(Path(stage_output_dir(c, "4c", "stamps")))
    n = rows
    mrows, mcols = column_bytes(Path(stage_output_dir(c, "4c", "metrics")))
    size = cfg.stage4a.stamp_size
    raw = {"stamp": 3 * size * size * 4, "arc": 3 * size * size * 4, "invvar": 3 * size * size * 4,
           "maskbits": size * size * 4}
    arrays = {k: cols.get(k, 0) / rows for k in raw}
    other = (sum(cols.values()) - sum(cols.get(k, 0) for k in raw)) / rows
    alone = per_row_zstd(Path(stage_output_dir(c, "4c", "stamps")), list(raw), c.stage4c.zstd_level)
    for k, v in arrays.items():
        one = alone.get(k, float("nan"))
        print(f"[bench_size] {k:9s} {v:9.0f} B/stamp in Parquet ({raw[k]} B raw, ratio {v / raw[k]:.2f}); "
              f"{one:9.0f} B compressed alone (ratio {one / raw[k]:.2f})")
    print(f"[bench_size] other columns in stamps/ {other:.0f} B/row; metrics/ {sum(mcols.values()) / mrows:.0f} B/row "
          f"({n} stamps, zstd level {c.stage4c.zstd_level})")
    print(json.dumps({"stamps": n, "stamp_size": size, "bytes_per_row": arrays, "bytes_alone": alone, "raw_bytes": raw,
                      "stamps_other_bytes_per_row": other, "peak_rss_mb": peak, "metrics_bytes_per_row": sum(mcols.values()) / mrows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
