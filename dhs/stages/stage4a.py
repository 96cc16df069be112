"""Stage 4a: the injection manifest (one row per injection or control task).

Reads ``phase3/<variant>/parent/``, keeps the hosts (``is_lrg_<variant>`` or ``stage4a.host_flag``, optionally
one selection set), collects their few catalogue columns to the driver (one small row per host) and builds
the manifest there with the pure :func:`dhs.sampling.manifest.build_manifest`. Because the hosts are sorted
by ``galaxy_id`` and every choice is made by xxhash64, the manifest does not depend on the Spark
partitioning, the number of cores or the order in which Spark returns rows. Writes
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
from dhs.sampling.grids import load_grid
from dhs.sampling.known_lenses import lenscat_lenses, near_known_lens, read_known_lenses
from dhs.sampling.manifest import OPTIONAL_HOST_COLUMNS, REQUIRED_HOST_COLUMNS, build_manifest
from dhs.sampling.priors import STREAM, parse_priors
from dhs.stages.common import (
    StageResult,
    finish_stage,
    output_complete,
    should_skip,
    skipped_result,
    stage_output_dir,
    write_parquet_atomically,
)

STAGE = "4a"


def _host_frame(spark: Any, cfg: RunConfig, parent_dir: str) -> tuple[Any, int, str]:
    """The parent rows that may host an injection, with only the columns the manifest needs."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, StringType

    settings = cfg.stage4a
    df = spark.read.parquet(to_spark_path(parent_dir))
    flag = settings.host_flag or f"is_lrg_{cfg.variant}"
    missing = [c for c in (*REQUIRED_HOST_COLUMNS, flag) if c not in df.columns]
    if missing:
        key = "stage4a.host_flag" if flag in missing else "parent schema"
        raise ValueError(f"stage 4a: {parent_dir}: missing column(s) {missing} ({key}); have {sorted(df.columns)}")
    rows_in = df.count()
    hosts = df.filter(F.col(flag) == F.lit(True))
    if settings.selection_set:
        if "selection_sets" not in df.columns:
            raise ValueError(f"stage 4a: stage4a.selection_set is set but {parent_dir} has no selection_sets column")
        dtype = df.schema["selection_sets"].dataType
        if isinstance(dtype, ArrayType):
            hosts = hosts.filter(F.array_contains("selection_sets", settings.selection_set))
        elif isinstance(dtype, StringType):
            hosts = hosts.filter(F.array_contains(F.split("selection_sets", r"[,;\s]+"), settings.selection_set))
        else:
            raise ValueError(f"stage 4a: {parent_dir}: selection_sets has type {dtype}; expected array<string>")
    cols = list(REQUIRED_HOST_COLUMNS) + [c for c in OPTIONAL_HOST_COLUMNS if c in df.columns]
    return hosts.select(*cols), rows_in, flag


def _known_lens_mask(cfg: RunConfig, hosts: pa.Table) -> tuple[np.ndarray | None, dict[str, Any]]:
    kl = cfg.stage4a.known_lenses
    if not kl.enabled:
        return None, {"enabled": False}
    ras, decs, sources = [], [], []
    if kl.catalog:
        ra, dec = read_known_lenses(kl.catalog)
        ras.append(ra)
        decs.append(dec)
        sources.append({"catalog": kl.catalog, "n": int(len(ra))})
    if kl.use_lenscat:
        ra, dec = lenscat_lenses()
        ras.append(ra)
        decs.append(dec)
        sources.append({"catalog": "lenscat", "n": int(len(ra))})
    mask = near_known_lens(hosts.column("ra").to_numpy(zero_copy_only=False),
                           hosts.column("dec").to_numpy(zero_copy_only=False),
                           np.concatenate(ras), np.concatenate(decs), kl.radius_arcsec)
    return mask, {"enabled": True, "radius_arcsec": kl.radius_arcsec, "sources": sources,
                  "hosts_excluded": int(mask.sum())}


def run(spark: Any, cfg: RunConfig) -> StageResult:
    """Run stage 4a: build and write the manifest of ``cfg.experiment_id``."""
    settings = cfg.stage4a
    out_dir = stage_output_dir(cfg, STAGE, "manifests")
    if should_skip(cfg, [out_dir]):
        return skipped_result(STAGE, out_dir)
    started = time.time()
    parent_dir = stage_output_dir(cfg, "3", "parent")
    if not output_complete(cfg, parent_dir):
        raise FileNotFoundError(f"stage 4a: the stage 3 parent table is missing or incomplete at {parent_dir} "
                                "(run stage 3 first)")
    grid = load_grid(settings.grid, settings.grids_dir) if settings.parameter_source == "grid" else None
    priors = parse_priors(settings.priors)

    host_df, rows_in, flag = _host_frame(spark, cfg, parent_dir)
    hosts = host_df.toArrow()
    exclude, kl_info = _known_lens_mask(cfg, hosts)
    result = build_manifest(hosts, settings, experiment_id=cfg.experiment_id, seed=cfg.seed, grid=grid,
                            priors=priors, exclude=exclude)
    table = result.table
    sdf = spark.createDataFrame(table)
    write_parquet_atomically(sdf, out_dir, partition_by=("region_split",))

    counts = dict(result.counts)
    counts["parent_rows"] = int(rows_in)
    counts["host_rows"] = int(hosts.num_rows)
    extra = {
        "host_flag": flag,
        "selection_set": settings.selection_set,
        "grid": grid.as_dict() if grid is not None else None,
        "priors": priors.as_dict(),
        "bin_edges": result.bin_edges,
        "seeds": {
            "run_seed": cfg.seed,
            "host_order": "xxhash64(galaxy_id, seed=run_seed) within (split, psf_bin, depth_bin)",
            "task_seed": "xxhash64(task_id, seed=run_seed) as signed int64",
            "prior_draws": f"PCG64(SeedSequence([uint64(task_seed), {STREAM}]))",
        },
        "known_lenses": kl_info,
        "columns": table.column_names,
    }
    res = StageResult(stage=STAGE, output_path=out_dir, rows_in=int(hosts.num_rows), rows_out=table.num_rows,
                      failures={f"host_{k}": v for k, v in result.dropped.items()},
                      extra={"per_split": counts["per_split"]})
    return finish_stage(cfg, res, [out_dir], inputs=[parent_dir], counts=counts, started=started, extra=extra)
