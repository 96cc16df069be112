"""Stage 4c — inject lensed arcs into real coadd cutouts (Spark wiring only).

Input: the stage 4a manifest (``phase4a/<variant>/manifests/<experiment_id>/``).  Output (docs/outputs.md):

* ``phase4c/<variant>/stamps/<experiment_id>/`` — manifest columns + metrics + ``stamp`` (+ kept arrays),
  zstd Parquet partitioned by ``region_split``;
* ``phase4c/<variant>/metrics/<experiment_id>/`` — the same rows without the array columns;
* ``_stage_config.json`` in both, with rows in/out and counts per error kind.

Execution shape: the manifest is range-partitioned on (``brickname``, ``task_id``) and sorted within
partitions, so each brick's coadd files are read once per partition and a crowded brick is split over
several partitions rather than making one oversized task; ``mapInArrow`` hands Arrow batches to
:func:`dhs.injection.task.inject_batch`, which renders the arcs of a whole batch together.  The coadd
store (a byte-bounded brick cache) and the COSMOS bank
live in module-level caches, i.e. once per Python worker process (Spark reuses workers).  Every row's output
is a pure function of the row and the survey files, so outputs do not depend on partitioning.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from dhs.config import RunConfig
from dhs.injection.schema import ARRAY_COLUMNS, output_schema
from dhs.injection.task import failure_row, inject_batch
from dhs.io.paths import exists, to_spark_path
from dhs.logs import StageSteps
from dhs.stages.common import (
    StageResult,
    finish_stage,
    should_skip,
    skipped_result,
    stage_output_dir,
    unsorted_partition_writes,
    write_parquet_atomically,
)
from dhs.stages.executor_state import executor_bank, executor_store
from dhs.stages.outcome_counts import outcome_counts, reason_kind, sum_by

__all__ = ["check_manifest_columns", "executor_bank", "executor_store", "make_mapper", "manifest_path",
           "process_rows", "reason_kind", "rows_to_batch", "run"]

STAGE = "4c"

#: Manifest columns stage 4c cannot work without.
REQUIRED_COLUMNS: tuple[str, ...] = ("task_id", "task_seed", "brickname", "ra", "dec", "region_split",
                                     "is_control", "lens_model", "theta_e_arcsec")

#: open output files per stage 4c task (one per region_split value; beyond it Spark sorts the rest)
OPEN_FILES_PER_TASK = 8
#: Parquet row-group size of stamps/ (the in-memory buffer of each open file)
STAMP_ROW_GROUP_BYTES = 64 * 2**20


def process_rows(rows: list[dict[str, Any]], store: Any, bank: Any, settings: Any,
                 timings: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Cut and inject a list of manifest rows (one output row per input row, same order).

    The stamps are cut row by row; the arcs of all rows are rendered together
    (:func:`dhs.injection.task.inject_batch`), so per-call overhead is paid once per Arrow batch.
    """
    keep = tuple(settings.keep_arrays)
    arrays = ("stamp",) + keep + (("stamp_npz",) if settings.stamp_npz else ())
    out: list[dict[str, Any] | None] = [None] * len(rows)
    todo, cuts = [], []
    for i, row in enumerate(rows):
        size = int(row.get("stamp_size") or settings.default_stamp_size)
        t0 = time.process_time()
        try:
            cut = store.cutout(float(row["ra"]), float(row["dec"]), size=size, brickname=row.get("brickname"))
        except Exception as exc:  # noqa: BLE001 - a bad file must become a failure row, not a crash
            out[i] = failure_row(row, f"read_error:{type(exc).__name__}: {exc}", arrays)
            continue
        finally:
            if timings is not None:
                timings["cutout"] = timings.get("cutout", 0.0) + time.process_time() - t0
        todo.append(i)
        cuts.append(cut)
    for i, res in zip(todo, inject_batch([rows[i] for i in todo], cuts, bank, settings, timings)):
        out[i] = res
    return out  # type: ignore[return-value]


def rows_to_batch(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.RecordBatch:
    """Output rows as an Arrow batch of ``schema``, built column by column (missing keys are null).

    Same values as ``pa.RecordBatch.from_pylist``; one conversion per column instead of per row and
    field (measured 2-4x less CPU per row, most of it in the stamp byte columns)."""
    arrays = [pa.array([r.get(f.name) for r in rows], type=f.type) for f in schema]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def make_mapper(cfg: RunConfig, schema: pa.Schema, rows_done: Any = None):
    """The ``mapInArrow`` function (closes over plain, picklable values only; ``rows_done``: an optional
    Spark accumulator counting the rows processed)."""
    settings = cfg.stage4c
    root = cfg.survey_root
    endpoint, region = cfg.s3.endpoint_url, cfg.s3.region
    cache_bytes = settings.cache_bytes
    bank_path = settings.cosmos_bank

    def mapper(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        store = executor_store(root, cache_bytes, endpoint, region)
        bank = executor_bank(bank_path, endpoint, region)
        for batch in batches:
            rows = process_rows(batch.to_pylist(), store, bank, settings)
            if rows_done is not None:
                rows_done.add(len(rows))
            yield rows_to_batch(rows, schema)

    return mapper


def manifest_path(cfg: RunConfig) -> str:
    """The manifest folder read by stage 4c."""
    return cfg.stage4c.manifest_path or stage_output_dir(cfg, "4a", "manifests")


def check_manifest_columns(names: list[str], path: str) -> None:
    """Fail fast (before any injection) when the manifest lacks a required column."""
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise ValueError(f"stage 4c: manifest {path} lacks required columns {missing}; has {sorted(names)}")


def check_inputs(cfg: RunConfig, src: str) -> None:
    """Fail fast when the manifest or the configured COSMOS bank does not exist."""
    opts = cfg.s3.options()
    if not exists(src, opts):
        raise FileNotFoundError(f"stage 4c: manifest not found at {src} (run stage 4a first or set "
                                "stage4c.manifest_path)")
    if cfg.stage4c.cosmos_bank and not exists(cfg.stage4c.cosmos_bank, opts):
        raise FileNotFoundError(f"stage 4c: stage4c.cosmos_bank {cfg.stage4c.cosmos_bank} does not exist")


def array_columns(settings: Any) -> list[str]:
    """The array columns of stamps/: ``stamp``, the kept arrays and ``stamp_npz`` when asked for."""
    return ["stamp"] + list(settings.keep_arrays) + (["stamp_npz"] if settings.stamp_npz else [])


def _inject(manifest: Any, cfg: RunConfig, schema: pa.Schema, n_part: int, rows_done: Any) -> Any:
    """The stamps DataFrame: the manifest range-partitioned on (brickname, task_id) — a brick's rows stay
    together (its coadds are read once per partition) but a brick with many tasks is spread over several
    partitions instead of making one huge task — and injected by :func:`make_mapper`."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return (manifest.repartitionByRange(n_part, "brickname", "task_id")
            .sortWithinPartitions("brickname", "task_id")
            .mapInArrow(make_mapper(cfg, schema, rows_done), from_arrow_schema(schema)))


def _write_metrics(spark: Any, schema: pa.Schema, stamps_dir: str, metrics_dir: str) -> list[Any]:
    """metrics/ = stamps/ without the arrays (column pruning: the arrays are not read back); returns the rows
    counted per (region_split, cutout_ok, error, clean) of the written metrics (one small job)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    written = spark.read.schema(from_arrow_schema(schema)).parquet(to_spark_path(stamps_dir))
    metrics = written.drop(*[c for c in ARRAY_COLUMNS if c in written.columns])
    write_parquet_atomically(metrics, metrics_dir, partition_by=("region_split",))
    m = spark.read.schema(metrics.schema).parquet(to_spark_path(metrics_dir))
    return m.groupBy("region_split", "cutout_ok", "error", "clean").count().collect()


def stamp_counts(groups: list[Any], rows_in: int, settings: Any) -> dict[str, Any]:
    """The ``counts`` of ``_stage_config.json`` from the groups of :func:`_write_metrics`: rows in/out, ok,
    failed, clean, failures by kind and reason, rows per split."""
    out = outcome_counts(groups)
    return {"rows_in": rows_in, "rows_out": out["rows_out"], "ok": out["ok"], "failed": out["failed"],
            "clean": int(sum(g["count"] for g in groups if g["clean"] == 1)),
            "clean_max_bad_pixel_frac": settings.clean_max_bad_pixel_frac,
            "failures_by_kind": out["failures_by_kind"], "failures_by_reason": out["failures_by_reason"],
            "rows_per_split": sum_by(groups, "region_split")}


def run(spark: Any, cfg: RunConfig) -> StageResult:
    """Run stage 4c: read the manifest, inject, write stamps/ and metrics/ with their stage configs."""
    settings = cfg.stage4c
    stamps_dir = stage_output_dir(cfg, STAGE, "stamps")
    metrics_dir = stage_output_dir(cfg, STAGE, "metrics")
    if should_skip(cfg, [stamps_dir, metrics_dir]):
        return skipped_result(STAGE, stamps_dir)
    started = time.time()
    steps = StageSteps(STAGE, spark)
    src = manifest_path(cfg)
    check_inputs(cfg, src)
    manifest = spark.read.parquet(to_spark_path(src))
    check_manifest_columns(manifest.columns, src)
    arrow_in = pa.schema([pa.field(f.name, _arrow_type(f.dataType)) for f in manifest.schema.fields])
    schema = output_schema(arrow_in, settings.keep_arrays, settings.stamp_npz)
    n_part = settings.partitions or int(spark.conf.get("spark.sql.shuffle.partitions"))
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(settings.arrow_batch_rows))
    rows_in = manifest.count()
    steps.done("manifest", rows=rows_in, partitions=n_part)

    stamps = _inject(manifest, cfg, schema, n_part, steps.count_rows(rows_in))
    # (one open file per split in each task instead of a sort of the ~100 KB rows; 64 MB row groups bound
    # the writers' buffers to ~200 MB per task with the three splits; no dictionary encoding is tried on the
    # array columns, whose values are all different)
    with unsorted_partition_writes(spark, max_open_files=OPEN_FILES_PER_TASK):
        write_parquet_atomically(stamps, stamps_dir, partition_by=("region_split",),
                                 max_records_per_file=settings.records_per_file(),
                                 row_group_bytes=STAMP_ROW_GROUP_BYTES, zstd_level=settings.zstd_level,
                                 plain_columns=array_columns(settings))
    steps.done("inject + write stamps", rows=rows_in)
    groups = _write_metrics(spark, schema, stamps_dir, metrics_dir)
    steps.done("write metrics")
    counts = stamp_counts(groups, rows_in, settings)
    if counts["rows_out"] != rows_in:
        raise RuntimeError(f"stage 4c: rows out ({counts['rows_out']}) != rows in ({rows_in}) for {src}")
    result = StageResult(stage=STAGE, output_path=stamps_dir, rows_in=rows_in, rows_out=counts["rows_out"],
                         failures=dict(counts["failures_by_kind"]), extra={"metrics_path": metrics_dir})
    return finish_stage(cfg, result, [stamps_dir, metrics_dir], inputs=[src, cfg.survey_root] +
                        ([settings.cosmos_bank] if settings.cosmos_bank else []), counts=counts,
                        started=started, extra={"partitions": n_part, "arrays": array_columns(settings)})


def _arrow_type(dtype: Any) -> pa.DataType:
    """Arrow type of a Spark SQL type (the manifest's flat types)."""
    from pyspark.sql.pandas.types import to_arrow_type

    return to_arrow_type(dtype)
