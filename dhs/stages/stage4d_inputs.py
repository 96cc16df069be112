"""Stage 4d's inputs with Spark: the stage 4c metrics (checked for the columns 4d needs), the region column (joined
from the stage 3 parent table when 4c lacks it), a classifier's score table, and the population of a row."""

from __future__ import annotations

from typing import Any

from dhs.config import RunConfig
from dhs.io.paths import exists, to_spark_path
from dhs.stages.common import stage_output_dir

#: Metrics columns stage 4d cannot work without.
REQUIRED_COLUMNS: tuple[str, ...] = ("task_id", "cutout_ok", "theta_e_arcsec", "bad_pixel_frac",
                                     "wise_brightmask_frac", "region_split")
#: Optional columns shipped to the per-row function when present.
OPTIONAL_COLUMNS: tuple[str, ...] = ("lens_model", "is_control", "psfdepth_r_mag5", "psfdepth_r", "src_mag_r_used",
                                     "src_mag_r", "target_snr", "psfsize_r", "psf_fwhm_used_r",
                                     "psf_source_g", "psf_source_r", "psf_source_z", "score")


def check_columns(columns: list[str], path: str, settings: Any) -> None:
    """Fail fast when the metrics at ``path`` lack a column stage 4d needs (naming every missing one)."""
    need = list(REQUIRED_COLUMNS) + [settings.psf_column, settings.snr_column]
    missing = [c for c in need if c not in columns]
    if "lens_model" not in columns and "is_control" not in columns:
        missing.append("lens_model (or is_control)")
    if missing:
        raise ValueError(f"stage 4d: {path} lacks column(s) {missing} (expected the stage 4c metrics columns of docs/outputs.md)")


def _with_region(spark: Any, cfg: RunConfig, m: Any) -> tuple[Any, list[str]]:
    """The metrics with the region column; joined from phase3 parent (galaxy_id) when 4c lacks it."""
    col = cfg.stage4d.region_column
    if col in m.columns:
        return m, []
    parent = stage_output_dir(cfg, "3", "parent")
    if "galaxy_id" not in m.columns or not exists(parent, cfg.s3.options()):
        raise ValueError(f"stage 4d: the 4c metrics lack the region column {col!r} and it cannot be joined from "
                         f"{parent} via galaxy_id (set stage4d.region_column to a column that exists)")
    p = spark.read.parquet(to_spark_path(parent))
    if col not in p.columns:
        raise ValueError(f"stage 4d: region column {col!r} is neither in the 4c metrics nor in {parent}")
    return m.join(p.select("galaxy_id", col).dropDuplicates(["galaxy_id"]), "galaxy_id", "left"), [parent]


def _with_scores(spark: Any, cfg: RunConfig, m: Any) -> Any:
    from pyspark.sql import functions as F

    path = cfg.stage4d.scores_path
    sc = spark.read.parquet(to_spark_path(path))
    for c in ("task_id", "score"):
        if c not in sc.columns:
            raise ValueError(f"stage 4d: score table {path} lacks column {c!r} (has {sc.columns})")
    dup = sc.groupBy("task_id").count().filter("count > 1").limit(1).collect()
    if dup:
        raise ValueError(f"stage 4d: score table {path}: task_id {dup[0]['task_id']!r} appears {dup[0]['count']} times")
    return m.drop("score").join(sc.select("task_id", F.col("score").cast("double")), "task_id", "left")


def read_metrics(spark: Any, cfg: RunConfig) -> tuple[Any, list[str]]:
    """The 4c metrics with the region column (and ``score`` from ``stage4d.scores_path``), checked; and the
    paths read."""
    s = cfg.stage4d
    metrics_dir = stage_output_dir(cfg, "4c", "metrics")
    if not exists(metrics_dir, cfg.s3.options()):
        raise FileNotFoundError(f"stage 4d: 4c metrics not found at {metrics_dir} (run stage 4c first)")
    m = spark.read.parquet(to_spark_path(metrics_dir))
    check_columns(m.columns, metrics_dir, s)
    m, extra_inputs = _with_region(spark, cfg, m)
    inputs = [metrics_dir] + extra_inputs
    if s.scores_path:
        m = _with_scores(spark, cfg, m)
        inputs.append(s.scores_path)
    return m, inputs


def shipped_columns(cfg: RunConfig, columns: list[str]) -> list[str]:
    """The metrics columns shipped to the per-row function (required, PSF / SNR / region and optional ones)."""
    s = cfg.stage4d
    return [c for c in dict.fromkeys(list(REQUIRED_COLUMNS) + [s.psf_column, s.snr_column, s.region_column]
                                     + list(OPTIONAL_COLUMNS)) if c in columns]


def population_expr(columns: list[str]) -> Any:
    """Population code as a Spark column: 1 control, 2 null injection, 0 injection (as
    :func:`dhs.completeness.surfaces.population_code`)."""
    from pyspark.sql import functions as F

    if "lens_model" in columns and "is_control" in columns:
        ctrl = (F.col("lens_model") == "CONTROL") | (F.col("is_control") == 1)
    elif "lens_model" in columns:
        ctrl = F.col("lens_model") == "CONTROL"
    else:
        return F.when(F.col("is_control") == 1, 1).otherwise(0).cast("long")
    null = F.upper(F.col("lens_model")) == "NULL"
    return F.when(F.coalesce(ctrl, F.lit(False)), 1).when(F.coalesce(null, F.lit(False)), 2).otherwise(0).cast("long")
