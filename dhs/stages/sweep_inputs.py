"""Which sweep files a run reads, how they are cut into Spark tasks and read in parallel (stages 3 and 6)."""

from __future__ import annotations

import fnmatch
import glob
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from dhs.config import RunConfig
from dhs.io.paths import S3Options, is_s3, read_bytes, s3_client, split_s3
from dhs.survey.layout import sweep_glob


def _s3_glob(pattern: str, s3: S3Options | None) -> list[str]:
    bucket, key = split_s3(pattern)
    prefix = key.split("*")[0].split("?")[0].split("[")[0]
    client = s3_client(s3)
    out: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if fnmatch.fnmatchcase(obj["Key"], key):
                out.append(f"s3://{bucket}/{obj['Key']}")
    return out


def _expand(item: str, s3: S3Options | None) -> list[str]:
    if any(ch in item for ch in "*?["):
        return sorted(_s3_glob(item, s3) if is_s3(item) else glob.glob(item))
    return [item]


def resolve_sweep_paths(cfg: RunConfig) -> list[str]:
    """The sweep files of the run, sorted and de-duplicated.

    ``stage3.sweep_index`` (text file, one path per line, ``#`` comments) wins over ``stage3.sweeps``
    (glob or list of paths/globs); neither → the DR10 glob under ``survey_root``. An empty result is a
    ``FileNotFoundError`` naming the key and the pattern. Listed files that do not exist are kept (they
    are reported as unreadable by the reading tasks).
    """
    st = cfg.stage3
    s3 = cfg.s3.options()
    if st.sweep_index:
        text = read_bytes(st.sweep_index, s3).decode("utf-8")
        items = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
        base = os.path.dirname(st.sweep_index) if not is_s3(st.sweep_index) else None
        items = [p if (is_s3(p) or os.path.isabs(p) or base is None) else os.path.join(base, p) for p in items]
        source = f"stage3.sweep_index ({st.sweep_index})"
    elif st.sweeps:
        items = [st.sweeps] if isinstance(st.sweeps, str) else list(st.sweeps)
        source = f"stage3.sweeps ({st.sweeps})"
    else:
        items = [sweep_glob(cfg.survey_root)]
        source = f"default sweep glob {items[0]} (stage3.sweeps unset)"
    paths: list[str] = []
    for it in items:
        paths.extend(_expand(it, s3))
    paths = sorted(dict.fromkeys(paths))
    if not paths:
        raise FileNotFoundError(f"stage 3: no sweep files found from {source}")
    return paths


def sweep_read_tasks(cfg: RunConfig, paths: list[str]) -> list[tuple[str, int, int]]:
    """(path, start, stop) per task; start = stop = −1 means the whole file."""
    chunk = cfg.stage3.read_chunk_rows
    if not chunk:
        return [(p, -1, -1) for p in paths]
    from dhs.survey.sweeps import sweep_nrows

    out = []
    for p in paths:
        try:
            n = sweep_nrows(p, cfg.s3.options())
        except Exception:  # noqa: BLE001 - the task reports the read error by name
            out.append((p, -1, -1))
            continue
        out += [(p, a, min(a + chunk, n)) for a in range(0, max(n, 1), chunk)]
    return out


#: Column of the rows of :func:`read_sweeps_in_tasks` that carries a file summary (JSON; null on data rows).
SUMMARY_COLUMN = "_summary"

#: What a stage does with one sweep file or row range: ``(path, rows or None) -> (tables, summary)``, the
#: tables in the stage's row schema, the summary a JSON-able dict with ``path``, ``rows``, ``error`` and
#: ``rows_read``.
SweepProcessor = Callable[[str, "tuple[int, int] | None"], "tuple[list[pa.Table], dict[str, Any]]"]


def read_sweeps_in_tasks(spark: Any, cfg: RunConfig, paths: list[str], process: SweepProcessor,
                         schema: pa.Schema) -> tuple[Any, list[dict[str, Any]]]:
    """Run ``process`` on every read task of :func:`sweep_read_tasks` (one Spark task each).

    Returns the persisted DataFrame of every row produced (``schema`` + :data:`SUMMARY_COLUMN`, one summary
    row per task; :func:`data_rows` selects the others; the caller unpersists it) and the task summaries,
    sorted by (path, row range)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from dhs.stages.common import spark_schema

    full = schema.append(pa.field(SUMMARY_COLUMN, pa.string()))

    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for path, a, b in zip(*(batch.column(i).to_pylist() for i in range(3))):
                tables, summ = process(path, None if a < 0 else (a, b))
                for table in tables:
                    if table is not None and table.num_rows:
                        table = table.append_column(SUMMARY_COLUMN, pa.nulls(table.num_rows, pa.string()))
                        yield from table.to_batches(max_chunksize=4096)
                srow = {f.name: pa.nulls(1, f.type) for f in full}
                srow[SUMMARY_COLUMN] = pa.array([json.dumps(summ, sort_keys=True)], pa.string())
                yield pa.RecordBatch.from_arrays([srow[f.name] for f in full], schema=full)

    tasks = sweep_read_tasks(cfg, paths)
    task_schema = T.StructType([T.StructField("path", T.StringType()), T.StructField("start", T.LongType()),
                                T.StructField("stop", T.LongType())])
    tasks_df = spark.createDataFrame(spark.sparkContext.parallelize(tasks, max(1, len(tasks))), task_schema)
    raw = tasks_df.mapInArrow(task, spark_schema(full)).persist()
    summaries = [json.loads(r[0]) for r in raw.where(F.col(SUMMARY_COLUMN).isNotNull()).select(SUMMARY_COLUMN).collect()]
    summaries.sort(key=lambda s: (s["path"], s["rows"] or [-1]))
    return raw, summaries


def data_rows(raw: Any) -> Any:
    """The data rows of a :func:`read_sweeps_in_tasks` DataFrame (summary rows and column dropped)."""
    from pyspark.sql import functions as F

    return raw.where(F.col(SUMMARY_COLUMN).isNull()).drop(SUMMARY_COLUMN)


def unreadable_sweeps(summaries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(path, error) of every sweep file a task could not read, sorted by path (one entry per file)."""
    return sorted({s["path"]: s["error"] for s in summaries if s["error"]}.items())


def check_readable(stage: str, unreadable: list[tuple[str, str]], allow_missing: bool) -> None:
    """Stop the stage when a sweep file could not be read, unless ``stage3.allow_missing_sweeps``."""
    if unreadable and not allow_missing:
        listing = "; ".join(f"{p}: {e}" for p, e in unreadable)
        raise RuntimeError(
            f"stage {stage}: {len(unreadable)} sweep file(s) could not be read (set stage3.allow_missing_sweeps: "
            f"true to skip them): {listing}"
        )
