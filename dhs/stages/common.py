"""What every Spark stage shares: output folders, atomic Parquet writes, stage metadata, the summary line."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from dhs.config import RunConfig
from dhs.io.outputs import PHASE_DIR, stage_output_dir  # noqa: F401  (re-exported for stages)
from dhs.io.paths import is_s3, to_spark_path
from dhs.io.stage_meta import output_complete as _output_complete
from dhs.io.stage_meta import stage_config_document, write_stage_config_file
from dhs.logs import ensure_logging, log


@dataclass
class StageResult:
    """What a stage did: counts, failures by reason, seconds, where the output is."""

    stage: str
    output_path: str
    rows_in: int = 0
    rows_out: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    skipped: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def output_complete(cfg: RunConfig, path: str) -> bool:
    """True when ``path`` holds a finished stage output (its ``_stage_config.json`` exists)."""
    return _output_complete(path, cfg.s3.options())


def should_skip(cfg: RunConfig, paths: list[str]) -> bool:
    """A stage is skipped when all its outputs are complete and ``force`` is false."""
    return (not cfg.force) and all(output_complete(cfg, p) for p in paths)


def write_parquet_atomically(
    df: Any,
    path: str,
    partition_by: tuple[str, ...] | list[str] = ("region_split",),
    compression: str = "zstd",
    max_records_per_file: int | None = None,
    row_group_bytes: int | None = None,
    zstd_level: int | None = None,
    plain_columns: tuple[str, ...] | list[str] = (),
) -> None:
    """Write a Spark DataFrame as Parquet so that a crash never leaves a complete-looking folder.

    Local paths: written to ``<path>._tmp-<uuid>`` and renamed into place (an old output is removed first).
    S3 paths: written in place with mode overwrite; completeness is marked by ``_stage_config.json``,
    written afterwards by :func:`finish_stage`.  ``row_group_bytes``: Parquet row-group size (the
    writer's in-memory buffer per open file; default 128 MB).  ``zstd_level``: the codec's level when
    ``compression`` is zstd (Parquet's default 3).  ``plain_columns``: columns written without trying
    dictionary encoding first (columns whose values never repeat, e.g. stamp arrays).
    """
    writer = df.write.mode("overwrite").option("compression", compression)
    if zstd_level is not None and compression == "zstd":
        writer = writer.option("parquet.compression.codec.zstd.level", str(int(zstd_level)))
    for col in plain_columns:
        writer = writer.option(f"parquet.enable.dictionary#{col}", "false")
    if max_records_per_file:
        writer = writer.option("maxRecordsPerFile", int(max_records_per_file))
    if row_group_bytes:
        writer = writer.option("parquet.block.size", int(row_group_bytes))
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if is_s3(path):
        writer.parquet(to_spark_path(path))
        return
    final = os.path.abspath(path)
    tmp = f"{final}._tmp-{uuid.uuid4().hex[:12]}"
    os.makedirs(os.path.dirname(final), exist_ok=True)
    try:
        writer.parquet(tmp)
        if os.path.exists(final):
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def unsorted_partition_writes(spark: Any, max_open_files: int) -> Iterator[None]:
    """Within the block, partitioned writes keep one open file per output partition value in each task
    (up to ``max_open_files``) instead of sorting the task's rows by the partition columns first.

    Spark otherwise sorts every task's rows before a ``partitionBy`` write, buffering (and spilling to
    disk) all of them: for stage 4c's ~100 KB stamp rows that was ~40 % of the JVM's CPU time.  Rows keep
    their order within each file.  Beyond ``max_open_files`` values in one task Spark falls back to sorting.
    """
    keys = {"spark.sql.optimizer.plannedWrite.enabled": "false",
            "spark.sql.maxConcurrentOutputFileWriters": str(int(max_open_files))}
    before = {k: spark.conf.get(k, None) for k in keys}
    for k, v in keys.items():
        spark.conf.set(k, v)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, v)


def finish_stage(
    cfg: RunConfig,
    result: StageResult,
    out_dirs: list[str],
    *,
    inputs: list[str],
    counts: dict[str, Any],
    started: float,
    extra: dict[str, Any] | None = None,
) -> StageResult:
    """Write ``_stage_config.json`` into every output folder, fill in timing and print the summary."""
    ended = time.time()
    result.seconds = round(ended - started, 3)
    doc = stage_config_document(
        cfg.resolved_dict(), result.stage, inputs=inputs, counts=counts, started=started, ended=ended, extra=extra
    )
    for d in out_dirs:
        write_stage_config_file(d, doc, cfg.s3.options())
    print_summary(result)
    return result


def skipped_result(stage: str, output_path: str) -> StageResult:
    """The result of a stage whose output already exists (and ``force`` is false)."""
    r = StageResult(stage=stage, output_path=output_path, skipped=True)
    print_summary(r)
    return r


def print_summary(result: StageResult) -> None:
    """One line per stage: rows in, rows out, failures by reason, seconds, where the output is."""
    if result.skipped:
        line = f"stage {result.stage}: skipped (output exists; set force: true to rewrite) -> {result.output_path}"
    else:
        fails = ", ".join(f"{k}={v}" for k, v in sorted(result.failures.items())) or "none"
        line = (
            f"stage {result.stage}: rows in {result.rows_in}, rows out {result.rows_out}, "
            f"failures: {fails}, {result.seconds:.1f} s -> {result.output_path}"
        )
    ensure_logging()
    log.info(line)


def spark_schema(arrow_schema: Any) -> Any:
    """The Spark StructType of a pyarrow schema (for ``mapInArrow`` / ``applyInArrow`` outputs)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(arrow_schema)
