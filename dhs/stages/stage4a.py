"""Stage 4a: the injection manifest (one row per injection or control task).

Reads ``phase3/<variant>/parent/``, keeps the hosts (``is_lrg_<variant>`` or ``stage4a.host_flag``; or the
hosts of one or several stage 3 selection sets, one row per host and set, each tagged ``selection_set_id``)
and runs the steps of :func:`dhs.sampling.manifest.build_manifest` with Spark:

1. executors flag unusable hosts (bad PSF size/depth/magnitude, near a known lens) — ``drop_reasons``;
2. the quantile edges of the eligible hosts' two binning columns come from exact order statistics computed
   by Spark (:mod:`dhs.stages.order_stats`: the driver holds histograms, never the column);
3. executors add the PSF and depth bins; the driver counts hosts per (split, psf_bin, depth_bin) cell and
   plans every cell (hosts, injection rows, control rows; the ``max_rows`` guardrail fires here);
4. ``groupBy(cell).applyInArrow`` builds each cell's rows with ``build_cell``.

Inside a cell hosts are sorted by ``galaxy_id`` and every choice is made by xxhash64, so the manifest does
not depend on the Spark partitioning, the number of cores or the order in which rows arrive. Writes
``phase4a/<variant>/manifests/<experiment_id>/`` partitioned by ``region_split`` and a ``_stage_config.json``
with the grid, priors, bin edges, seeds and counts per split and tier.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa

from dhs.config import RunConfig
from dhs.io.paths import to_spark_path
from dhs.logs import StageSteps
from dhs.sampling.grids import load_grid
from dhs.sampling.known_lenses import lenscat_lenses, near_known_lens, read_known_lenses
from dhs.sampling.manifest import (
    ALL_HOSTS_SET,
    OPTIONAL_HOST_COLUMNS,
    REQUIRED_HOST_COLUMNS,
    add_bins,
    build_cell,
    cell_label,
    depth_mag5,
    drop_reasons,
    manifest_schema,
    n_configs,
    plan_cells,
    prepare_hosts,
    summarize_counts,
)
from dhs.sampling.priors import STREAM, parse_priors
from dhs.sampling.stratify import edge_probabilities
from dhs.stages.common import (
    StageResult,
    finish_stage,
    output_complete,
    should_skip,
    skipped_result,
    spark_schema,
    stage_output_dir,
    write_parquet_atomically,
)
from dhs.stages.order_stats import exact_quantiles

STAGE = "4a"
DROP = "__drop_reason"
#: The columns of a manifest cell (hosts are binned and planned per cell).
CELL_COLUMNS = ("region_split", "psf_bin", "depth_bin", "selection_set_id")


def _host_frame(spark: Any, cfg: RunConfig, parent_dir: str) -> tuple[Any, int, str, list[str]]:
    """The parent rows that may host an injection, with only the columns the manifest needs and a
    ``selection_set_id`` column (one row per host and selection set; ``all`` without selection sets)."""
    from functools import reduce

    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, StringType

    settings = cfg.stage4a
    df = spark.read.parquet(to_spark_path(parent_dir))
    sets = settings.requested_selection_sets()
    # stage 3's host_selection_sets already name each set's hosts (region in the set and the set's LRG
    # variant); a parent without it gives region-level selection_sets, filtered by the run variant's flag
    member_col = "host_selection_sets" if "host_selection_sets" in df.columns else "selection_sets"
    by_membership = sets is not None and member_col == "host_selection_sets"
    flag = settings.host_flag or (None if by_membership else f"is_lrg_{cfg.variant}")
    need = [*REQUIRED_HOST_COLUMNS, *([flag] if flag else [])]
    missing = [c for c in need if c not in df.columns]
    if missing:
        key = "stage4a.host_flag" if flag in missing else "parent schema"
        raise ValueError(f"stage 4a: {parent_dir}: missing column(s) {missing} ({key}); have {sorted(df.columns)}")
    rows_in = df.count()
    hosts = df.filter(F.col(flag) == F.lit(True)) if flag else df
    cols = list(REQUIRED_HOST_COLUMNS) + [c for c in OPTIONAL_HOST_COLUMNS if c in df.columns]
    if sets is None:
        return hosts.select(*cols), rows_in, flag or "", [ALL_HOSTS_SET]
    key = "stage4a.selection_sets" if settings.selection_sets is not None else "stage4a.selection_set"
    if member_col not in df.columns:
        raise ValueError(f"stage 4a: {key} is set but {parent_dir} has no selection_sets column")
    dtype = df.schema[member_col].dataType
    if isinstance(dtype, ArrayType):
        members = F.col(member_col)
    elif isinstance(dtype, StringType):
        members = F.split(member_col, r"[,;\s]+")
    else:
        raise ValueError(f"stage 4a: {parent_dir}: {member_col} has type {dtype}; expected array<string>")
    known = sorted(r[0] for r in df.select(F.explode(members)).distinct().collect() if r[0])
    ids = known if sets == "all" else list(sets)
    unknown = [i for i in ids if i not in known]
    if unknown or not ids:
        raise ValueError(f"stage 4a: {key}: selection set(s) {unknown or ids} not found in {parent_dir} "
                         f"(stage 3 made {known or 'none'})")
    parts = [hosts.filter(F.array_contains(members, i)).select(*cols).withColumn("selection_set_id", F.lit(i))
             for i in ids]
    return reduce(lambda a, b: a.unionByName(b), parts), rows_in, flag or member_col, ids


def _known_lenses(cfg: RunConfig) -> tuple[tuple[np.ndarray, np.ndarray] | None, dict[str, Any]]:
    """RA, Dec (deg) of the known lenses to avoid, or None when the exclusion is off."""
    kl = cfg.stage4a.known_lenses
    if not kl.enabled:
        return None, {"enabled": False}
    ras, decs, sources = [], [], []
    if kl.catalog:
        ra, dec = read_known_lenses(kl.catalog)
        ras.append(ra)
        decs.append(dec)
        sources.append({"catalog": kl.catalog, "n": len(ra)})
    if kl.use_lenscat:
        ra, dec = lenscat_lenses()
        ras.append(ra)
        decs.append(dec)
        sources.append({"catalog": "lenscat", "n": len(ra)})
    return (np.concatenate(ras), np.concatenate(decs)), {"enabled": True, "radius_arcsec": kl.radius_arcsec,
                                                          "sources": sources}


def _bin_edges(eligible: Any, settings: Any) -> dict[str, list[float]]:
    """The quantile edges of :func:`dhs.sampling.manifest.bin_edges`, computed by Spark (exact order
    statistics; the driver never holds the host column)."""
    keys = pa.schema([pa.field("psfsize_r", pa.float64()), pa.field("psfdepth_r_mag5", pa.float64())])

    def bin_keys(batches):
        for batch in batches:
            t = pa.Table.from_batches([batch])
            yield pa.RecordBatch.from_arrays(
                [t.column("psfsize_r").combine_chunks().cast(pa.float64()),
                 pa.array(depth_mag5(t.column("psfdepth_r").to_numpy(zero_copy_only=False)))], schema=keys)

    kdf = eligible.select("psfsize_r", "psfdepth_r").mapInArrow(bin_keys, spark_schema(keys))
    return {"psfsize_r_arcsec": exact_quantiles(kdf, "psfsize_r", edge_probabilities(settings.psf_bins)).tolist(),
            "psfdepth_r_mag5": exact_quantiles(kdf, "psfdepth_r_mag5", edge_probabilities(settings.depth_bins)).tolist()}


def _flag_hosts(host_df: Any, lenses: tuple[np.ndarray, np.ndarray] | None, radius: float) -> tuple[Any, pa.Schema]:
    """The hosts prepared by :func:`dhs.sampling.manifest.prepare_hosts` with ``__drop_reason`` (null for an
    eligible host; :func:`dhs.sampling.manifest.drop_reasons`), persisted; and the prepared schema."""
    from pyspark import StorageLevel

    prepared_schema = prepare_hosts(host_df.limit(0).toArrow()).schema
    flagged_schema = prepared_schema.append(pa.field(DROP, pa.string()))

    def flag_hosts(batches):
        for batch in batches:
            t = prepare_hosts(pa.Table.from_batches([batch]))
            exclude = None
            if lenses is not None:
                exclude = near_known_lens(t.column("ra").to_numpy(zero_copy_only=False),
                                          t.column("dec").to_numpy(zero_copy_only=False), lenses[0], lenses[1], radius)
            t = t.append_column(DROP, pa.array(drop_reasons(t, exclude).tolist(), type=pa.string()))
            yield from t.cast(flagged_schema).to_batches()

    flagged = host_df.mapInArrow(flag_hosts, spark_schema(flagged_schema)).persist(StorageLevel.MEMORY_AND_DISK)
    return flagged, prepared_schema


def drop_counts(groups: list[Any]) -> tuple[int, dict[str, int]]:
    """Hosts in and hosts dropped per reason, from the hosts counted per ``__drop_reason`` (null = kept)."""
    n_in = sum(int(r["count"]) for r in groups)
    return n_in, {r[DROP]: int(r["count"]) for r in groups if r[DROP] is not None}


def _bin_hosts(eligible: Any, edges: dict[str, list[float]], prepared_schema: pa.Schema) -> tuple[Any, pa.Schema]:
    """The eligible hosts with their PSF and depth bins (:func:`dhs.sampling.manifest.add_bins`)."""
    binned_schema = add_bins(prepared_schema.empty_table(), edges).schema

    def bin_hosts(batches):
        for batch in batches:
            yield from add_bins(pa.Table.from_batches([batch]), edges).cast(binned_schema).to_batches()

    return eligible.mapInArrow(bin_hosts, spark_schema(binned_schema)), binned_schema


def _write_manifest(binned: Any, cells: list[Any], schema: pa.Schema, cfg: RunConfig, grid: Any, priors: Any,
                    out_dir: str) -> None:
    """Build every cell's rows (``groupBy(cell).applyInArrow`` of :func:`dhs.sampling.manifest.build_cell`)
    and write the manifest partitioned by ``region_split``."""
    settings, experiment_id, seed = cfg.stage4a, cfg.experiment_id, cfg.seed
    plans = {c.label: c for c in cells}

    def cell_rows(table: pa.Table) -> pa.Table:
        label = cell_label(table.column("region_split")[0].as_py(), table.column("psf_bin")[0].as_py(),
                           table.column("depth_bin")[0].as_py(), table.column("selection_set_id")[0].as_py())
        return build_cell(table, plans[label], settings, experiment_id=experiment_id, seed=seed, grid=grid,
                          priors=priors, schema=schema)

    manifest = binned.groupBy(*CELL_COLUMNS).applyInArrow(cell_rows, spark_schema(schema))
    write_parquet_atomically(manifest, out_dir, partition_by=("region_split",))


def _written_counts(spark: Any, out_dir: str, theta_e_over_psf_min: float) -> list[dict[str, Any]]:
    """Per (region_split, is_control) of the written manifest: rows, distinct hosts and resolved rows."""
    from pyspark.sql import functions as F

    written = spark.read.parquet(to_spark_path(out_dir))
    resolved = (F.col("theta_e_over_psf") >= F.lit(theta_e_over_psf_min)).cast("long")
    return [{"region_split": r["region_split"], "is_control": int(r["is_control"]), "n": int(r["n"]),
             "hosts": int(r["hosts"]), "resolved": int(r["resolved"] or 0)}
            for r in written.groupBy("region_split", "is_control")
            .agg(F.count(F.lit(1)).alias("n"), F.countDistinct("galaxy_id").alias("hosts"),
                 F.sum(resolved).alias("resolved")).collect()]


def manifest_extra(cfg: RunConfig, grid: Any, priors: Any, edges: dict, flag: str, set_ids: list[str],
                   kl_info: dict[str, Any], dropped: dict[str, int], columns: list[str]) -> dict[str, Any]:
    """What ``_stage_config.json`` records besides the counts: host flag, selection sets, grid, priors, bin
    edges, seeds, the known-lens exclusion (with the hosts it excluded) and the manifest columns."""
    settings = cfg.stage4a
    if kl_info.get("enabled"):
        kl_info = {**kl_info, "hosts_excluded": int(dropped.get("near_known_lens", 0))}
    return {
        "host_flag": flag,
        "selection_set": settings.selection_set,
        "selection_set_ids": set_ids,
        "null_fraction": settings.null_fraction,
        "grid": grid.as_dict() if grid is not None else None,
        "priors": priors.as_dict(),
        "bin_edges": edges,
        "seeds": {
            "run_seed": cfg.seed,
            "host_order": "xxhash64(galaxy_id, seed=run_seed) within (split, psf_bin, depth_bin)",
            "task_seed": "xxhash64(task_id, seed=run_seed) as signed int64",
            "prior_draws": f"PCG64(SeedSequence([uint64(task_seed), {STREAM}]))",
        },
        "known_lenses": kl_info,
        "columns": columns,
    }


def run(spark: Any, cfg: RunConfig) -> StageResult:
    """Run stage 4a: build and write the manifest of ``cfg.experiment_id``."""
    from pyspark.sql import functions as F

    settings = cfg.stage4a
    out_dir = stage_output_dir(cfg, STAGE, "manifests")
    if should_skip(cfg, [out_dir]):
        return skipped_result(STAGE, out_dir)
    started = time.time()
    steps = StageSteps(STAGE, spark)
    parent_dir = stage_output_dir(cfg, "3", "parent")
    if not output_complete(cfg, parent_dir):
        raise FileNotFoundError(f"stage 4a: the stage 3 parent table is missing or incomplete at {parent_dir} "
                                "(run stage 3 first)")
    grid = load_grid(settings.grid, settings.grids_dir) if settings.parameter_source == "grid" else None
    priors = parse_priors(settings.priors)
    n_cfg = n_configs(settings, grid)
    lenses, kl_info = _known_lenses(cfg)
    host_df, rows_in, flag, set_ids = _host_frame(spark, cfg, parent_dir)
    flagged, prepared_schema = _flag_hosts(host_df, lenses, settings.known_lenses.radius_arcsec)
    try:
        n_hosts_in, dropped = drop_counts(flagged.groupBy(DROP).count().collect())
        if n_hosts_in == sum(dropped.values()):
            raise ValueError(f"stage 4a: no eligible hosts in {parent_dir} (flag {flag}; dropped {dropped or 'none'})")
        eligible = flagged.filter(F.col(DROP).isNull()).drop(DROP)
        edges = _bin_edges(eligible, settings)
        binned, binned_schema = _bin_hosts(eligible, edges, prepared_schema)
        sizes = {(r["region_split"], int(r["psf_bin"]), int(r["depth_bin"]), r["selection_set_id"]): int(r["count"])
                 for r in binned.groupBy(*CELL_COLUMNS).count().collect()}
        cells = plan_cells(sizes, settings, n_cfg)
        steps.done("hosts and cells", parent_rows=rows_in, hosts=n_hosts_in, dropped=sum(dropped.values()),
                   cells=len(cells), configs=n_cfg)
        schema = manifest_schema(binned_schema)
        _write_manifest(binned, cells, schema, cfg, grid, priors, out_dir)
        steps.done("write manifest", injection_rows=sum(c.n_pos_rows for c in cells),
                   control_rows_planned=sum(c.n_controls for c in cells))
    finally:
        flagged.unpersist()

    written = _written_counts(spark, out_dir, settings.resolved.theta_e_over_psf_min)
    counts = summarize_counts(cells, written, settings, n_input=n_hosts_in, dropped=dropped, n_cfg=n_cfg)
    counts["parent_rows"] = int(rows_in)
    extra = manifest_extra(cfg, grid, priors, edges, flag, set_ids, kl_info, dropped, schema.names)
    res = StageResult(stage=STAGE, output_path=out_dir, rows_in=n_hosts_in, rows_out=counts["rows_out"],
                      failures={f"host_{k}": v for k, v in dropped.items()},
                      extra={"per_split": counts["per_split"]})
    return finish_stage(cfg, res, [out_dir], inputs=[parent_dir], counts=counts, started=started, extra=extra)
