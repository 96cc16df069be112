"""Stage 3 — parent sample: LRG selection from sweeps, brick quality, regions, ranking, splits.

Flow:

1. resolve the sweep files (glob / list / index file, local or ``s3://``) and load the brick summary table
   (fail fast, before Spark work, naming the file);
2. read sweeps in parallel, one Spark task per file (or per row chunk): each task reads only the needed
   columns, evaluates every LRG variant (:func:`dhs.sampling.lrg.evaluate_cuts`), keeps the parent rows
   and emits one summary row per file (rows read/kept, failures per cut, per-brick galaxy/LRG counts,
   or the read error);
3. on the driver: brick quality → capped regions → region metrics and scores → HEALPix-block splits
   balanced by parent galaxies → selection sets;
4. join region id / split / selection sets onto the parent rows and write ``parent/`` and ``regions/``
   (Parquet partitioned by ``region_split``) with ``_stage_config.json``.

Selection sets: every ``stage3.selection_sets`` spec (a ranking mode: top-K or stratified by a region score)
is built for each LRG variant of ``stage3.selection_set_variants`` (scores from that variant's LRG counts,
ids ``<spec id>__<variant>``; the seed system's 4 modes × 3 variants = 12 sets), or for the run variant only.
A parent row carries ``selection_sets`` (the sets of its region) and ``host_selection_sets`` (those whose
variant it passes: the sets it can host an injection for; stage 4a reads this).
"""

from __future__ import annotations

import math
import time
from typing import Any

import pyarrow as pa

from dhs.config import RunConfig
from dhs.io.paths import to_spark_path
from dhs.logs import StageSteps
from dhs.sampling.lrg import LRGVariant, resolve_variants
from dhs.sampling.parent_task import PER_FILE_KEYS, merge_sweep_summaries, parent_schema, process_sweep
from dhs.sampling.region_plan import build_brick_table, plan_regions, regions_table
from dhs.stages.common import (
    StageResult,
    finish_stage,
    should_skip,
    skipped_result,
    spark_schema,
    stage_output_dir,
    write_parquet_atomically,
)
from dhs.stages.sweep_inputs import (
    check_readable,
    data_rows,
    read_sweeps_in_tasks,
    resolve_sweep_paths,
    unreadable_sweeps,
)
from dhs.survey.brick_summary import load_brick_summary
from dhs.survey.layout import brick_summary_path

__all__ = ["build_brick_table", "load_brick_summary", "parent_schema", "plan_regions", "process_sweep",
           "resolve_sweep_paths", "run"]

STAGE = "3"


def run_variants(cfg: RunConfig) -> list[LRGVariant]:
    """The LRG variants of ``stage3.variants``; the run variant must be one of them."""
    variants = resolve_variants(cfg.stage3.variants, cfg.stage3.custom_variants)
    names = [v.name for v in variants]
    if cfg.variant not in names:
        raise ValueError(f"variant {cfg.variant!r} is not in stage3.variants {names}")
    return variants


def _read_parents(spark: Any, cfg: RunConfig, paths: list[str], variants: list[LRGVariant]) -> tuple[Any, list]:
    """Every sweep read by a Spark task (:func:`dhs.sampling.parent_task.process_sweep`): the persisted rows
    and the per-task summaries."""
    parent_rule, run_variant, s3 = cfg.stage3.parent_rule, cfg.variant, cfg.s3.options()

    def parents_of(path: str, rows: tuple[int, int] | None) -> tuple[list[pa.Table], dict[str, Any]]:
        table, summary = process_sweep(path, variants, parent_rule, run_variant, s3, rows)
        return [table], summary

    return read_sweeps_in_tasks(spark, cfg, paths, parents_of, parent_schema(variants))


def host_sets_expr(set_variant: dict[str, str]) -> Any:
    """Spark column ``host_selection_sets``: the sets of the row's region whose LRG variant the row passes
    (``is_lrg_<variant>``), i.e. the selection sets this galaxy is a host of (in set order)."""
    from pyspark.sql import functions as F

    if not set_variant:
        return F.array().cast("array<string>")
    picks = [F.when(F.array_contains("selection_sets", sid) & F.coalesce(F.col(f"is_lrg_{v}"), F.lit(False)),
                    F.lit(sid)) for sid, v in set_variant.items()]
    return F.filter(F.array(*picks), lambda x: x.isNotNull())


def _write_parent(spark: Any, cfg: RunConfig, parents: Any, bricks: dict, metrics: dict, info: dict,
                  n_parent: int, parent_dir: str) -> None:
    """Join region id, split, selection sets and host sets onto the parent rows (rows of bricks in no region
    are dropped) and write ``parent/`` partitioned by ``region_split``, sorted by ``galaxy_id``."""
    from pyspark.sql import functions as F

    brick_map = spark.createDataFrame(
        list(zip(bricks["brickname"].tolist(), bricks["region_id"].astype(int).tolist())),
        "brickname string, region_id long",
    )
    reg_map = spark.createDataFrame(
        list(zip(metrics["region_id"].astype(int).tolist(), [str(x) for x in metrics["region_split"]],
                 [list(x) for x in metrics["selection_sets"]])),
        "region_id long, region_split string, selection_sets array<string>",
    )
    parent_out = (parents.join(F.broadcast(brick_map), "brickname", "inner")
                  .where(F.col("region_id") >= 0)
                  .join(F.broadcast(reg_map), "region_id", "inner"))
    parent_out = parent_out.withColumn("host_selection_sets", host_sets_expr(info["selection_set_variant"]))
    st = cfg.stage3
    n_parts = st.output_partitions or max(1, min(cfg.spark.shuffle_partitions, math.ceil(n_parent / 500_000)))
    parent_out = parent_out.repartition(n_parts, "galaxy_id").sortWithinPartitions("galaxy_id")
    write_parquet_atomically(parent_out, parent_dir, partition_by=("region_split",))


def _write_regions(spark: Any, metrics: dict, regions_dir: str) -> None:
    """Write ``regions/`` (one file per split, sorted by ``region_id``)."""
    regions_tbl = regions_table(metrics)
    regions_df = spark.createDataFrame([tuple(r.values()) for r in regions_tbl.to_pylist()],
                                       spark_schema(regions_tbl.schema))
    write_parquet_atomically(regions_df.coalesce(1).sortWithinPartitions("region_id"), regions_dir,
                             partition_by=("region_split",))


def stage3_counts(cfg: RunConfig, paths: list[str], summaries: list[dict], merged: dict, per_split: dict[str, int],
                  metrics: dict, info: dict) -> dict[str, Any]:
    """The ``counts`` of ``_stage_config.json``: sweeps read and unreadable, rows read/kept/dropped, passes and
    failures per variant and cut, parents and regions per split, per-file summaries and the plan's counts."""
    unreadable = unreadable_sweeps(summaries)
    rows_out = sum(per_split.values())
    reg_split: dict[str, int] = {}
    for s in metrics["region_split"].tolist():
        reg_split[s] = reg_split.get(s, 0) + 1
    return {
        "sweep_files": len(paths),
        "sweep_files_unreadable": len(unreadable),
        "unreadable_sweeps": [{"path": p, "error": e} for p, e in unreadable],
        "rows_read": merged["rows_read"],
        "parent_rule": cfg.stage3.parent_rule,
        "rows_kept": merged["rows_kept"],
        "rows_dropped_bad_brick": merged["rows_kept"] - rows_out,
        "parent_rows": rows_out,
        "passed_per_variant": merged["passed"],
        "failed_per_cut": merged["failed_cut"],
        "parent_per_split": per_split,
        "regions_per_split": reg_split,
        "per_file": [{k: s[k] for k in PER_FILE_KEYS} for s in summaries],
        **info,
    }


def stage3_failures(counts: dict[str, Any]) -> dict[str, int]:
    """Failures by reason: unreadable sweep files and parent rows dropped with their brick."""
    failures = {"unreadable_sweep": counts["sweep_files_unreadable"]} if counts["sweep_files_unreadable"] else {}
    if counts["rows_dropped_bad_brick"]:
        failures["parent_in_failed_brick"] = counts["rows_dropped_bad_brick"]
    return failures


def run(spark: Any, cfg: RunConfig) -> StageResult:
    """Run stage 3 (see module docstring). Skips when both outputs exist and ``force`` is false."""
    started = time.time()
    parent_dir = stage_output_dir(cfg, STAGE, "parent")
    regions_dir = stage_output_dir(cfg, STAGE, "regions")
    if should_skip(cfg, [parent_dir, regions_dir]):
        return skipped_result(STAGE, parent_dir)
    st = cfg.stage3
    steps = StageSteps(STAGE, spark)
    variants = run_variants(cfg)
    names = [v.name for v in variants]
    paths = resolve_sweep_paths(cfg)
    summary_path = st.brick_summary or brick_summary_path(cfg.survey_root)
    brick_summary = load_brick_summary(summary_path, st.brick_psfdepth_unit, cfg.s3.options())
    steps.done("inputs", sweep_files=len(paths), bricks_in_summary=len(brick_summary["brickname"]))

    raw, summaries = _read_parents(spark, cfg, paths, variants)
    merged = merge_sweep_summaries(summaries, names)
    steps.done("read sweeps", read_tasks=len(summaries), rows_read=merged["rows_read"],
               unreadable=sum(1 for s in summaries if s["error"]))
    try:
        check_readable(STAGE, unreadable_sweeps(summaries), st.allow_missing_sweeps)
        parents = data_rows(raw)
        per_brick = {r[0]: int(r[1]) for r in parents.groupBy("brickname").count().collect()}
        bricks = build_brick_table(merged["bricks"], names, brick_summary)
        metrics, info = plan_regions(cfg, bricks, names, per_brick)
        steps.done("regions", bricks=len(bricks["brickname"]), regions=len(metrics["region_id"]))
        _write_parent(spark, cfg, parents, bricks, metrics, info, sum(per_brick.values()), parent_dir)
    finally:
        raw.unpersist()
    steps.done("write parent", parent_rows_before_brick_cut=sum(per_brick.values()))
    _write_regions(spark, metrics, regions_dir)

    written = spark.read.parquet(to_spark_path(parent_dir))
    per_split = {r[0]: int(r[1]) for r in written.groupBy("region_split").count().collect()}
    counts = stage3_counts(cfg, paths, summaries, merged, per_split, metrics, info)
    result = StageResult(stage=STAGE, output_path=parent_dir, rows_in=merged["rows_read"],
                         rows_out=counts["parent_rows"], failures=stage3_failures(counts),
                         extra={"regions_path": regions_dir, "counts": counts})
    return finish_stage(cfg, result, [parent_dir, regions_dir], inputs=paths + [summary_path], counts=counts,
                        started=started, extra={"brick_summary": summary_path})
