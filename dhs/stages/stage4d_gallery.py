"""Stage 4d's gallery with Spark: example injections spread over θE, each with its arc and a matched control,
picked so that arcs are visible, and decoded for the report."""

from __future__ import annotations

from typing import Any

from dhs.config import RunConfig
from dhs.io.paths import to_spark_path
from dhs.io.stamps import decode
from dhs.stages.stage4d_inputs import population_expr


def _gallery_hash(cfg: RunConfig) -> Any:
    """Spark column: xxhash64(run seed, "gallery", task_id), the order in which examples are drawn."""
    from pyspark.sql import functions as F

    return F.xxhash64(F.lit(str(cfg.seed)), F.lit("gallery"), F.col("task_id"))


def _injections_with_controls(cfg: RunConfig, m: Any) -> Any:
    """Valid injections (θE > 0) with ``control_id``: a control with ``control_of`` = the injection, else a
    control of the same split × PSF bin × depth bin cell (unpaired matching), first in hash order."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    pop = population_expr(m.columns)
    h = _gallery_hash(cfg)
    inj = m.filter((pop == 0) & (F.col("cutout_ok") == 1) & (F.col("theta_e_arcsec") > 0))
    cell = [c for c in ("region_split", "psf_bin", "depth_bin") if c in m.columns]
    inj = inj.select("task_id", "theta_e_arcsec", cfg.stage4d.snr_column, *cell)
    controls = m.filter((pop == 1) & (F.col("cutout_ok") == 1))
    if "control_of" in m.columns:
        ctrl = (controls.filter(F.col("control_of").isNotNull())
                .select(F.col("control_of").alias("task_id"), F.col("task_id").alias("control_id"), h.alias("ch")))
        ctrl = (ctrl.withColumn("r", F.row_number().over(Window.partitionBy("task_id").orderBy("ch", "control_id")))
                .filter("r = 1").drop("r", "ch"))
        inj = inj.join(ctrl, "task_id", "left")
    else:
        inj = inj.withColumn("control_id", F.lit(None).cast("string"))
    if len(cell) == 3:  # otherwise a control of the same split × PSF bin × depth bin cell (unpaired matching)
        by_cell = (controls.select(*cell, F.col("task_id").alias("cell_control_id"), h.alias("ch"))
                   .withColumn("r", F.row_number().over(Window.partitionBy(*cell).orderBy("ch", "cell_control_id")))
                   .filter("r = 1").drop("r", "ch"))
        inj = (inj.join(by_cell, cell, "left")
               .withColumn("control_id", F.coalesce(F.col("control_id"), F.col("cell_control_id")))
               .drop("cell_control_id"))
    return inj


def _chosen(cfg: RunConfig, inj: Any) -> list[Any]:
    """The examples: from the best non-empty pool (visible with a control, visible, with a control, any),
    ``per_theta`` per equal-width θE bin (``n_theta`` bins over the pool) in hash order."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    g = cfg.stage4d.gallery
    visible = F.coalesce(F.col(cfg.stage4d.snr_column) >= g.visible_snr_factor * cfg.stage4d.snr_min, F.lit(False))
    has_control = F.col("control_id").isNotNull()
    pool = inj
    for preferred in (visible & has_control, visible, has_control):  # the best non-empty pool
        if inj.filter(preferred).limit(1).count():
            pool = inj.filter(preferred)
            break
    lo, hi = pool.agg(F.min("theta_e_arcsec"), F.max("theta_e_arcsec")).first()
    if lo is None:
        return []
    # n_theta equal-width θE bins over the pool (grids and continuous θE alike), per_theta examples each
    width = (hi - lo) / g.n_theta if hi > lo else 1.0
    col_bin = F.least(F.floor((F.col("theta_e_arcsec") - F.lit(lo)) / F.lit(width)), F.lit(g.n_theta - 1))
    w = Window.partitionBy("_bin").orderBy(_gallery_hash(cfg), "task_id")
    return (pool.withColumn("_bin", col_bin).withColumn("r", F.row_number().over(w))
            .filter(F.col("r") <= g.per_theta).collect())


def _decoded_stamps(spark: Any, stamps_dir: str, ids: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The decoded ``stamp`` and ``arc`` arrays of the tasks ``ids`` ({task_id: array})."""
    from pyspark.sql import functions as F

    st = spark.read.parquet(to_spark_path(stamps_dir))
    size_col = "stamp_size" if "stamp_size" in st.columns else None
    arc_col = ["arc"] if "arc" in st.columns else []
    got = st.filter(F.col("task_id").isin(ids)).select("task_id", "stamp", *arc_col, *([size_col] if size_col else []))
    blobs, arcs = {}, {}
    for r in got.collect():
        size = r[size_col] if size_col else None
        if r["stamp"] is not None:
            blobs[r["task_id"]] = decode(r["stamp"], size=size)
        if arc_col and r["arc"] is not None:
            arcs[r["task_id"]] = decode(r["arc"], size=size)
    return blobs, arcs


def gallery_pairs(spark: Any, cfg: RunConfig, m: Any, stamps_dir: str) -> list[dict]:
    """Injections spread over ``gallery.n_theta`` equal-width θE bins, ``per_theta`` each in xxhash64 order,
    with their arcs and matched controls (``control_of``, else a control of the same split × PSF bin × depth bin
    cell); drawn from the injections whose SNR reaches
    ``gallery.visible_snr_factor × snr_min`` and that have a matched control when there are such."""
    chosen = _chosen(cfg, _injections_with_controls(cfg, m))
    if not chosen:
        return []
    ids = [r["task_id"] for r in chosen] + [r["control_id"] for r in chosen if r["control_id"]]
    blobs, arcs = _decoded_stamps(spark, stamps_dir, ids)
    snr_column = cfg.stage4d.snr_column
    pairs = []
    for r in sorted(chosen, key=lambda r: (r["theta_e_arcsec"], r["task_id"])):
        if r["task_id"] not in blobs:
            continue
        snr = r[snr_column]
        pairs.append({
            "theta_e": float(r["theta_e_arcsec"]),
            "injection": blobs[r["task_id"]],
            "arc": arcs.get(r["task_id"]),
            "control": blobs.get(r["control_id"]) if r["control_id"] else None,
            "label": f"{snr_column}={snr:.1f}" if snr is not None else "",
            "control_label": "",
            "injection_id": r["task_id"],
            "control_id": r["control_id"],
        })
    return pairs
