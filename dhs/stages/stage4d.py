"""Stage 4d — selection function (completeness surfaces), shortcut audit and the HTML report.

Input: ``phase4c/<variant>/metrics/<experiment_id>/`` (and ``stamps/`` for the audit and the gallery).
Output: ``phase4d/<variant>/completeness/<experiment_id>/`` holding

* ``counts.parquet`` — per-task 0/1 flags summed over population × every bin (re-marginalise it freely);
* ``completeness.parquet`` — every surface, recovery definition, selection (all/clean/no_fallback), with counts
  (n_attempt, n_valid, n_recovered), completeness, Wilson and Jeffreys 68/95 % bounds (injections only);
* ``fpr.parquet`` — false-positive rates on valid controls (only with a score table);
* ``region_aggregate.parquet``, ``snr_hist.parquet``, ``shortcut_audit.parquet`` (injections vs controls),
  ``null_audit.parquet`` (null injections vs their matched controls; both audits on the full and the
  centre-masked features, column ``variant``), ``psf_provenance.parquet``, ``failures.parquet``,
  ``recovery_definitions.json``, ``dimensions.json`` (what every binned axis is, with its unit);
* ``brightness_targeting.parquet`` — per SNR bin, the share of targeted injections asked for (``target_snr``)
  and achieved (the measured ``target_snr_metric``), see :mod:`dhs.completeness.targeting`;
* ``report/index.html`` with its PNGs; ``_stage_config.json`` (written last: marks the folder complete).

Spark does the per-row work (one ``mapInPandas`` calling :func:`dhs.completeness.tables.derive_batch`) and
the aggregation; everything after aggregation is pandas on small tables. The tables are small, so they are
single Parquet files rather than ``region_split`` partitions (split is a dimension of the tables).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from dhs.completeness.audit import (
    FULL,
    NULL_AUDIT_CELL_COLUMNS,
    audit_features,
    null_audit_selection,
    shortcut_audit,
)
from dhs.completeness.recovery import RecoveryDefinition
from dhs.completeness.surfaces import POP_COL, clean_selection_text, count_columns
from dhs.completeness.tables import (
    bin_defs,
    derive_batch,
    dimension_descriptions,
    key_columns,
    prepare_columns,
    recovery_definitions,
    surface_groupings,
    surface_tables,
    valid_control_scores,
)
from dhs.completeness.targeting import add_summaries, injection_summary, mix_table, summary_columns
from dhs.config import RunConfig
from dhs.core import SNR_METRICS
from dhs.io.paths import exists, is_s3, join, to_spark_path, write_bytes
from dhs.io.stamps import decode
from dhs.logs import StageSteps
from dhs.sampling.hashing import stable_hash64
from dhs.stages.common import StageResult, finish_stage, should_skip, skipped_result, stage_output_dir
from dhs.stages.order_stats import order_statistics

STAGE = "4d"

#: Metrics columns stage 4d cannot work without.
REQUIRED_COLUMNS: tuple[str, ...] = ("task_id", "cutout_ok", "theta_e_arcsec", "bad_pixel_frac",
                                     "wise_brightmask_frac", "region_split")
#: Optional columns shipped to the per-row function when present.
OPTIONAL_COLUMNS: tuple[str, ...] = ("lens_model", "is_control", "psfdepth_r_mag5", "psfdepth_r", "src_mag_r_used",
                                     "src_mag_r", "target_snr", "psfsize_r", "psf_fwhm_used_r",
                                     "psf_source_g", "psf_source_r", "psf_source_z", "score")


def _check_columns(columns: list[str], path: str, settings: Any) -> None:
    need = list(REQUIRED_COLUMNS) + [settings.psf_column, settings.snr_column]
    missing = [c for c in need if c not in columns]
    if "lens_model" not in columns and "is_control" not in columns:
        missing.append("lens_model (or is_control)")
    if missing:
        raise ValueError(f"stage 4d: {path} lacks column(s) {missing} (expected the stage 4c metrics of DESIGN §5)")


def _spark_type(name: str) -> str:
    return "string" if name.startswith("b_") and not name.endswith("_lo") else (
        "double" if name.endswith("_lo") or name == "snr_log_bin" else "long")


def _derived_schema(settings: Any, defs: list[RecoveryDefinition]) -> str:
    cols = key_columns(bin_defs(settings)) + count_columns(defs) + ["snr_log_bin"]
    return ", ".join(f"`{c}` {_spark_type(c)}" for c in cols)


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


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    bio = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False), bio, compression="zstd")
    return bio.getvalue()


AUDIT_SAMPLE_COLUMNS = ("task_id", "stamp", "stamp_size", "psfsize_r", "psfdepth_r", "psfdepth_r_mag5",
                        "region_split", "theta_e_arcsec", "psf_fwhm_used_r")


def _hash_unit(seed: int) -> Any:
    """Spark column: xxhash64(run seed, task_id) mapped to [0, 1) — the deterministic audit sampling key."""
    from pyspark.sql import functions as F

    return F.pmod(F.xxhash64(F.lit(str(seed)), F.col("task_id")), F.lit(1 << 40)).cast("double") / float(1 << 40)


def _sample_fraction(n_per_class: int, n_rows: int) -> float:
    """Share of ``n_rows`` kept by hash so that a little more than ``n_per_class`` rows survive."""
    return min(1.0, (n_per_class + 5 * np.sqrt(n_per_class) + 20) / max(n_rows, 1))


def _null_audit_ids(cfg: RunConfig, m: Any, n_null: int) -> pd.DataFrame:
    """Task ids of the null-injection audit (valid null rows with a matched control, and those controls;
    one per host), chosen from the metrics table by :func:`dhs.completeness.audit.null_audit_selection`.
    The null rows are first thinned by hash to about ``audit.n_per_class`` (of ``n_null`` valid ones), so
    the driver receives a bounded number of rows whatever the size of the run."""
    from pyspark.sql import functions as F

    empty = pd.DataFrame({"task_id": pd.Series([], dtype=str), "population": pd.Series([], dtype="int64"),
                          "galaxy_id": pd.Series([], dtype=str)})
    if any(c not in m.columns for c in ("task_id", "control_of", "galaxy_id", "cutout_ok", "lens_model")):
        return empty
    pop = _pop_expr(m.columns)
    frac = _sample_fraction(cfg.stage4d.audit.n_per_class, n_null)
    nulls = (m.filter((pop == 2) & (F.col("cutout_ok") == 1) & (_hash_unit(cfg.seed) < F.lit(frac)))
             .select(F.col("task_id").alias("_null_id")))
    rows = (m.withColumn("population", pop)
            .filter(F.col("population").isin(1, 2) & (F.col("cutout_ok") == 1))
            .join(F.broadcast(nulls), F.coalesce(F.col("control_of"), F.col("task_id")) == F.col("_null_id"),
                  "left_semi")
            .select("task_id", "population", "control_of", "galaxy_id", "cutout_ok",
                    *[c for c in NULL_AUDIT_CELL_COLUMNS if c in m.columns]).toPandas())
    if rows.empty:
        return empty
    return null_audit_selection(rows, cfg.stage4d.audit.n_per_class, cfg.seed)


def _audit(spark: Any, cfg: RunConfig, stamps_dir: str, n_ok: dict[int, int],
           null_ids: pd.DataFrame) -> tuple[list[dict], list[dict], dict]:
    """Shortcut audit (valid injections vs valid controls, on a deterministic xxhash64 sample of each class)
    and null-injection audit (the rows of ``null_ids``), both on the full and the centre-masked features, in
    one pass over the stamps. The shortcut audit keeps, per class, the ``audit.n_per_class`` stamps with the
    smallest xxhash64(run seed, task_id), so the driver never holds more. Returns (shortcut rows, null-audit
    rows, counts)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    a = cfg.stage4d.audit
    st = spark.read.parquet(to_spark_path(stamps_dir))
    pop = _pop_expr(st.columns)
    u = _hash_unit(cfg.seed)
    # keep a little more than n_per_class by hash, then exactly the n_per_class smallest hashes per class:
    # the driver receives at most n_per_class feature rows per class, whatever the number of stamps
    frac = {k: _sample_fraction(a.n_per_class, v) for k, v in n_ok.items()}
    keep = [c for c in AUDIT_SAMPLE_COLUMNS if c in st.columns]
    ids = spark.createDataFrame(pd.DataFrame({"task_id": null_ids["task_id"].astype(str).tolist(),
                                              "_in_null_audit": [1] * len(null_ids)}),
                                "task_id string, _in_null_audit long")
    main = (((F.col(POP_COL) == 1) & (u < F.lit(frac.get(1, 0.0))))
            | ((F.col(POP_COL) == 0) & (u < F.lit(frac.get(0, 0.0)))))
    sample = (st.filter((F.col("cutout_ok") == 1) & F.col("stamp").isNotNull())
              .withColumn(POP_COL, pop)
              .join(F.broadcast(ids), "task_id", "left")
              .withColumn("_u", u)
              .withColumn("_in_main", main.cast("long"))
              .filter((F.col("_in_main") == 1) | F.col("_in_null_audit").isNotNull())
              .select(POP_COL, "_u", "_in_main", "_in_null_audit", *keep))
    core, ann, mask = a.core_radius_pix, a.annulus_inner_frac, a.mask_radius_pix
    _, variants = audit_features(np.zeros((1, 3, 64, 64)), core_radius_pix=core, annulus_inner_frac=ann,
                                 mask_radius_pix=mask)
    names = list(variants)

    def features(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for b in batches:
            out = pd.DataFrame({"task_id": b["task_id"], POP_COL: b[POP_COL].astype("int64"),
                                "_u": b["_u"], "_in_main": b["_in_main"].astype("int64"),
                                "_in_null_audit": b["_in_null_audit"].fillna(0).astype("int64")})
            for n in names:
                out[n] = np.nan
            if len(b):
                sizes = b["stamp_size"] if "stamp_size" in b.columns else pd.Series([None] * len(b), index=b.index)
                for size, idx in b.groupby(sizes.fillna(-1).astype(int)).groups.items():
                    arr = np.stack([decode(blob, size=None if size < 0 else int(size)) for blob in b.loc[idx, "stamp"]])
                    f, _ = audit_features(arr, core_radius_pix=core, annulus_inner_frac=ann, mask_radius_pix=mask)
                    for n in names:
                        out.loc[idx, n] = f[n]
            prep = prepare_columns(b.drop(columns=["stamp"]).assign(region_id=0), region_column="region_id")
            out["psfsize_r"] = pd.to_numeric(b["psfsize_r"], errors="coerce") if "psfsize_r" in b.columns else np.nan
            out["depth_r_mag5"] = prep["depth_r_mag5"].to_numpy()
            yield out

    schema = ", ".join(["task_id string", f"{POP_COL} long", "_u double", "_in_main long", "_in_null_audit long"]
                       + [f"{n} double" for n in names + ["psfsize_r", "depth_r_mag5"]])
    rank = F.row_number().over(Window.partitionBy(POP_COL, "_in_main").orderBy("_u", "task_id"))
    capped = F.when((F.col("_in_main") == 1) & (F.col("_r") > a.n_per_class), F.lit(0)).otherwise(F.col("_in_main"))
    feats = (sample.mapInPandas(features, schema).withColumn("_r", rank).withColumn("_in_main", capped)
             .filter((F.col("_in_main") == 1) | (F.col("_in_null_audit") == 1)).drop("_r", "_u")
             .toPandas().sort_values("task_id", kind="stable"))
    cols = names + ["psfsize_r", "depth_r_mag5"]
    variants = {**variants, "psfsize_r": FULL, "depth_r_mag5": FULL}

    def compare(pos: pd.DataFrame, neg: pd.DataFrame, seed: int) -> list[dict]:
        if not len(pos) or not len(neg):
            return []
        return shortcut_audit({c: pos[c].to_numpy(float) for c in cols}, {c: neg[c].to_numpy(float) for c in cols},
                              n_boot=a.n_boot, seed=seed, cl=a.confidence,
                              limit=a.auc_limit, red_limit=a.auc_red, variants=variants)

    mf = feats[feats["_in_main"] == 1]
    pos, neg = mf[mf[POP_COL] == 0], mf[mf[POP_COL] == 1]
    nf = feats[feats["_in_null_audit"] == 1]
    npos, nneg = nf[nf[POP_COL] == 2], nf[nf[POP_COL] == 1]
    counts = {"audit_n_pos": len(pos), "audit_n_neg": len(neg), "null_audit_n_null_hosts": len(npos),
              "null_audit_n_control_hosts": len(nneg)}
    return compare(pos, neg, cfg.seed), compare(npos, nneg, stable_hash64(cfg.seed, "null_audit")), counts


def _injection_summary(cfg: RunConfig, m: Any) -> tuple[dict[str, int], str]:
    """Brightness-targeting mix and resolved share of the valid injections (one small Spark job)."""
    s = cfg.stage4d
    edges = list(s.target_snr_bins.edges or [])
    thr = cfg.stage4a.resolved.theta_e_over_psf_min
    cols = [c for c in ("cutout_ok", "lens_model", "is_control", "theta_e_arcsec", "psf_fwhm_used_r", "target_snr",
                        "target_snr_metric", *SNR_METRICS) if c in m.columns]
    metric = cfg.stage4a.target_snr_metric

    def summarize(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for b in batches:
            yield injection_summary(b, edges, metric, "psf_fwhm_used_r", thr)

    schema = ", ".join(f"`{c}` long" for c in summary_columns(len(edges)))
    parts = m.select(*cols).mapInPandas(summarize, schema).toPandas()
    if "target_snr_metric" in m.columns:
        used = [r[0] for r in m.select("target_snr_metric").where("target_snr_metric IS NOT NULL").distinct()
                .limit(5).collect()]
        metric = ", ".join(sorted(used)) or metric
    return add_summaries(parts) if len(parts) else dict.fromkeys(summary_columns(len(edges)), 0), metric


def _pop_expr(columns: list[str]) -> Any:
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


GALLERY_DISTINCT_MAX = 1000
"""Up to this many distinct θE values (a grid) the gallery spreads its columns over the distinct values;
above it (θE drawn from a prior) over the order statistics of the θE column."""


def _gallery_thetas(inj: Any, n_theta: int) -> list[float]:
    """θE values of the gallery columns: ``n_theta`` spread evenly over the distinct values (grids) or over
    the ranks of all values (continuous θE); never more than :data:`GALLERY_DISTINCT_MAX` rows collected."""
    thetas = sorted(r[0] for r in inj.select("theta_e_arcsec").distinct().limit(GALLERY_DISTINCT_MAX + 1).collect())
    if len(thetas) <= GALLERY_DISTINCT_MAX:
        if not thetas:
            return []
        return sorted({thetas[int(np.rint(i))] for i in np.linspace(0, len(thetas) - 1, min(n_theta, len(thetas)))})
    n, vals = order_statistics(inj, "theta_e_arcsec",
                               lambda k: sorted({int(np.rint(i)) for i in np.linspace(0, k - 1, min(n_theta, k))}))
    return sorted(set(vals.values()))


def _gallery(spark: Any, cfg: RunConfig, m: Any, stamps_dir: str) -> list[dict]:
    """Injections spread across θE with their matched controls (control_of), chosen by xxhash64 order."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    g = cfg.stage4d.gallery
    pop = _pop_expr(m.columns)
    h = F.xxhash64(F.lit(str(cfg.seed)), F.lit("gallery"), F.col("task_id"))
    inj = m.filter((pop == 0) & (F.col("cutout_ok") == 1) & (F.col("theta_e_arcsec") > 0))
    pick = _gallery_thetas(inj, g.n_theta)
    if not pick:
        return []
    inj = inj.filter(F.col("theta_e_arcsec").isin(pick)).select("task_id", "theta_e_arcsec", cfg.stage4d.snr_column)
    if "control_of" in m.columns:
        ctrl = (m.filter((pop == 1) & (F.col("cutout_ok") == 1) & F.col("control_of").isNotNull())
                .select(F.col("control_of").alias("task_id"), F.col("task_id").alias("control_id"), h.alias("ch")))
        ctrl = (ctrl.withColumn("r", F.row_number().over(Window.partitionBy("task_id").orderBy("ch", "control_id")))
                .filter("r = 1").drop("r", "ch"))
        inj = inj.join(ctrl, "task_id", "left")
    else:
        inj = inj.withColumn("control_id", F.lit(None).cast("string"))
    w = Window.partitionBy("theta_e_arcsec").orderBy(F.col("control_id").isNull(), h, "task_id")
    chosen = inj.withColumn("r", F.row_number().over(w)).filter(F.col("r") <= g.per_theta).collect()
    ids = [r["task_id"] for r in chosen] + [r["control_id"] for r in chosen if r["control_id"]]
    st = spark.read.parquet(to_spark_path(stamps_dir))
    size_col = "stamp_size" if "stamp_size" in st.columns else None
    blobs = {r["task_id"]: decode(r["stamp"], size=r[size_col] if size_col else None)
             for r in st.filter(F.col("task_id").isin(ids)).select("task_id", "stamp", *( [size_col] if size_col else [])).collect()
             if r["stamp"] is not None}
    pairs = []
    for r in sorted(chosen, key=lambda r: (r["theta_e_arcsec"], r["task_id"])):
        if r["task_id"] not in blobs:
            continue
        snr = r[cfg.stage4d.snr_column]
        pairs.append({
            "theta_e": float(r["theta_e_arcsec"]),
            "injection": blobs[r["task_id"]],
            "control": blobs.get(r["control_id"]) if r["control_id"] else None,
            "label": f"{cfg.stage4d.snr_column}={snr:.1f}" if snr is not None else "",
            "control_label": "",
            "injection_id": r["task_id"],
            "control_id": r["control_id"],
        })
    return pairs


class SparkScores:
    """:class:`dhs.completeness.recovery.ScoreCounts` over a Spark column ``score`` of valid control scores
    (cached; each question is one small Spark job, the scores never reach the driver)."""

    def __init__(self, df: Any):
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        self.df = df.where(F.col("score").isNotNull() & ~F.isnan("score")).persist(StorageLevel.MEMORY_AND_DISK)
        self.n = int(self.df.count())

    def count_ge(self, threshold: float) -> int:
        from pyspark.sql import functions as F

        return int(self.df.where(F.col("score") >= F.lit(float(threshold))).count())

    def value_at_rank(self, rank: int) -> float:
        return order_statistics(self.df, "score", [int(rank)])[1][int(rank)]

    def min_above(self, value: float) -> float | None:
        from pyspark.sql import functions as F

        v = self.df.where(F.col("score") > F.lit(float(value))).agg(F.min("score")).first()[0]
        return None if v is None else float(v)

    def close(self) -> None:
        self.df.unpersist()


def _marginal_counts(derived: Any, bins: list, ccols: list[str]) -> dict[frozenset[str], pd.DataFrame]:
    """The count columns summed over population × each set of bins of
    :func:`dhs.completeness.tables.surface_groupings`, in one Spark job (grouping sets): a few rows per bin
    (and per region × θE / resolution bin), whatever the number of tasks."""
    from pyspark.sql import functions as F

    by = {b.name: b for b in bins}
    cols = key_columns(bins)
    groups = surface_groupings()
    sets = [[POP_COL] + [k for n in g for k in (by[n].key, by[n].key_lo)] for g in groups]
    agg = (derived.groupingSets(sets, *cols)
           .agg(*[F.sum(F.col(f"`{c}`")).alias(c) for c in ccols], F.grouping_id().alias("_gid")).toPandas())
    out: dict[frozenset[str], pd.DataFrame] = {}
    for g, keys in zip(groups, sets):
        gid = sum(1 << (len(cols) - 1 - i) for i, c in enumerate(cols) if c not in keys)
        sub = agg.loc[agg["_gid"] == gid, keys + ccols].reset_index(drop=True)
        for c in ccols:
            sub[c] = sub[c].astype("int64")
        out[frozenset(g)] = sub
    return out


def _stage_joint_counts(joint: Any, keys: list[str], out_dir: str) -> str:
    """Write the joint count table with Spark next to ``out_dir`` (one sorted Parquet file); returns the
    staging folder for :func:`_place_joint_counts`."""
    from dhs.stages.common import write_parquet_atomically

    staged = f"{out_dir.rstrip('/')}._counts-{uuid.uuid4().hex[:12]}"
    write_parquet_atomically(joint.repartition(1).sortWithinPartitions(*keys), staged, partition_by=())
    return staged


def _place_joint_counts(staged: str, target: str, opts: Any) -> None:
    """Move the single Parquet file of ``staged`` to ``target`` and remove ``staged``."""
    if is_s3(staged):
        from dhs.io.paths import s3_client, split_s3

        client = s3_client(opts)
        bucket, prefix = split_s3(staged)
        keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
                for o in page.get("Contents", [])]
        part = sorted(k for k in keys if k.rsplit("/", 1)[-1].startswith("part-"))
        tb, tk = split_s3(target)
        if part:
            client.copy_object(Bucket=tb, Key=tk, CopySource={"Bucket": bucket, "Key": part[0]})
        for k in keys:
            client.delete_object(Bucket=bucket, Key=k)
        return
    parts = sorted(n for n in os.listdir(staged) if n.startswith("part-"))
    if parts:
        os.replace(os.path.join(staged, parts[0]), target)
    shutil.rmtree(staged, ignore_errors=True)


def run(spark: Any, cfg: RunConfig) -> StageResult:
    """Run stage 4d: surfaces, FPRs, region aggregate, shortcut audit, report; returns the StageResult
    (``extra["report"]`` is the path of ``report/index.html``)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    s = cfg.stage4d
    out_dir = stage_output_dir(cfg, STAGE, "completeness")
    if should_skip(cfg, [out_dir]):
        r = skipped_result(STAGE, out_dir)
        r.extra["report"] = join(out_dir, "report", "index.html")
        return r
    started = time.time()
    steps = StageSteps(STAGE, spark)
    opts = cfg.s3.options()
    metrics_dir = stage_output_dir(cfg, "4c", "metrics")
    stamps_dir = stage_output_dir(cfg, "4c", "stamps")
    if not exists(metrics_dir, opts):
        raise FileNotFoundError(f"stage 4d: 4c metrics not found at {metrics_dir} (run stage 4c first)")
    m = spark.read.parquet(to_spark_path(metrics_dir))
    _check_columns(m.columns, metrics_dir, s)
    m, extra_inputs = _with_region(spark, cfg, m)
    inputs = [metrics_dir] + extra_inputs
    if s.scores_path:
        m = _with_scores(spark, cfg, m)
        inputs.append(s.scores_path)
    ship = [c for c in dict.fromkeys(list(REQUIRED_COLUMNS) + [s.psf_column, s.snr_column, s.region_column]
                                     + list(OPTIONAL_COLUMNS)) if c in m.columns]
    rows = m.select(*ship)

    control_scores = None
    if s.scores_path:
        def ctrl_scores(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            for b in batches:
                yield pd.DataFrame({"score": valid_control_scores(b, s)})

        control_scores = SparkScores(rows.mapInPandas(ctrl_scores, "score double"))
    try:
        defs = recovery_definitions(s, control_scores)
    finally:
        if control_scores is not None:
            control_scores.close()

    def derive(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for b in batches:
            yield derive_batch(b, s, defs)

    derived = rows.mapInPandas(derive, _derived_schema(s, defs)).persist(StorageLevel.MEMORY_AND_DISK)
    bins = bin_defs(s)
    ccols = count_columns(defs)
    sums = [F.sum(F.col(f"`{c}`")).alias(c) for c in ccols]
    marginals = _marginal_counts(derived, bins, ccols)
    # the joint table (population × every bin, for users to re-marginalise) is written by Spark, never collected
    joint_staged = _stage_joint_counts(derived.groupBy(*key_columns(bins)).agg(*sums), key_columns(bins), out_dir)
    first = defs[0].name
    snr_hist = (derived.filter((F.col(POP_COL) == 0) & (F.col(f"`nv__{first}__all`") == 1))
                .groupBy("b_theta_e_lo", "snr_log_bin").count().withColumnRenamed("count", "n").toPandas())
    derived.unpersist()
    steps.done("counts", rows=int(marginals[frozenset()]["n_attempt"].sum()),
               cells=sum(len(t) for t in marginals.values()))

    total = marginals[frozenset()]
    rows_out = int(total["n_attempt"].sum())
    tables = surface_tables(marginals, bins, defs, tuple(s.confidence_levels), s.region_min_count)

    pop = _pop_expr(m.columns)
    kind = F.when(F.col("error").isNull(), F.lit(None)).otherwise(F.substring_index(F.col("error"), ":", 1)) \
        if "error" in m.columns else F.lit(None).cast("string")
    prov_cols = [c for c in ("psf_source_g", "psf_source_r", "psf_source_z") if c in m.columns]
    summary = (m.withColumn("population", F.when(pop == 1, "control").when(pop == 2, "null").otherwise("injection"))
               .groupBy("population", "cutout_ok", kind.alias("error_kind"), *prov_cols).count().toPandas())
    rows_in = int(summary["count"].sum())
    if rows_out != rows_in:
        raise RuntimeError(f"stage 4d: {rows_in} metrics rows in {metrics_dir} but {rows_out} counted")
    failures = (summary.groupby(["population", "cutout_ok", "error_kind"], dropna=False)["count"].sum()
                .reset_index().sort_values(["population", "cutout_ok"]))
    provenance = (summary.groupby(["population", *prov_cols], dropna=False)["count"].sum().reset_index()
                  .sort_values(["population", *prov_cols]))
    n_ok = {p: int(failures[(failures["population"] == name) & (failures["cutout_ok"] == 1)]["count"].sum())
            for p, name in ((0, "injection"), (1, "control"), (2, "null"))}
    n_null = int(summary.loc[summary["population"] == "null", "count"].sum())

    have_stamps = exists(stamps_dir, opts)
    audit_rows: list[dict] = []
    null_rows: list[dict] = []
    audit_counts: dict = {}
    if s.audit.enabled and have_stamps and (min(n_ok[0], n_ok[1]) > 0 or n_ok[2] > 0):
        null_ids = _null_audit_ids(cfg, m, n_ok[2]) if (s.audit.null_audit and n_ok[2] > 0) else \
            pd.DataFrame({"task_id": pd.Series([], dtype=str)})
        audit_rows, null_rows, audit_counts = _audit(spark, cfg, stamps_dir, {0: n_ok[0], 1: n_ok[1]}, null_ids)
        inputs.append(stamps_dir)
    pairs = _gallery(spark, cfg, m, stamps_dir) if (s.gallery.enabled and have_stamps) else []
    steps.done("audit and gallery", audit_rows=len(audit_rows), gallery_pairs=len(pairs))

    inj_sum, target_metric = _injection_summary(cfg, m)
    targeting = mix_table(inj_sum, s.target_snr_bins.edges or [], target_metric)
    thr = cfg.stage4a.resolved.theta_e_over_psf_min
    n_inj = int(total.loc[total[POP_COL] == 0, "n_attempt"].sum())
    n_ctl = int(total.loc[total[POP_COL] == 1, "n_attempt"].sum())
    dims = dimension_descriptions(s)
    meta = {
        "variant": cfg.variant, "experiment_id": cfg.experiment_id, "input (4c metrics)": metrics_dir,
        "tasks": rows_in, "injections": n_inj, "controls": n_ctl,
        "null injections (audit only, in no rate)": n_null,
        "resolution axis": dims["resolution"],
        "valid injections (proxy inputs, all)": int(total.loc[total[POP_COL] == 0, f"nv__{first}__all"].sum()),
        "score table": s.scores_path or "none (proxy only)",
        f"resolved injections (θE / psf_fwhm_used_r ≥ {thr:g})": (
            f"{inj_sum['n_resolved'] / inj_sum['n_valid']:.1%} ({inj_sum['n_resolved']} of {inj_sum['n_valid']} "
            "valid injections)" if inj_sum["n_valid"] else "no valid injection"),
        "brightness targeting": (f"{inj_sum['n_targeted']} injections targeted on r-band {target_metric}"
                                 if inj_sum["n_targeted"] else "off (source magnitudes from the manifest)"),
        "clean selection": clean_selection_text(s.max_bad_pixel_frac, s.max_wise_brightmask_frac,
                                                cfg.stage4c.clean_max_bad_pixel_frac),
    }
    files: dict[str, bytes] = {
        "completeness.parquet": _parquet_bytes(tables["completeness"]),
        "region_aggregate.parquet": _parquet_bytes(tables["region_aggregate"]),
        "snr_hist.parquet": _parquet_bytes(snr_hist),
        "psf_provenance.parquet": _parquet_bytes(provenance),
        "failures.parquet": _parquet_bytes(failures),
        "shortcut_audit.parquet": _parquet_bytes(pd.DataFrame(audit_rows)),
        "null_audit.parquet": _parquet_bytes(pd.DataFrame(null_rows)),
        "dimensions.json": json.dumps(
            [{"name": b.name, "column": b.column, "description": dims.get(b.name, b.name),
              "width": b.width, "edges": list(b.edges) if b.edges else None, "categorical": b.categorical}
             for b in bins], indent=2).encode(),
        "brightness_targeting.parquet": _parquet_bytes(targeting),
        "recovery_definitions.json": json.dumps(
            [{"name": d.name, "kind": d.kind, "required": list(d.required), "params": d.params,
              "description": d.description} for d in defs], indent=2).encode(),
    }
    if len(tables["fpr"]):
        files["fpr.parquet"] = _parquet_bytes(tables["fpr"])

    with tempfile.TemporaryDirectory(prefix="dhs4d-") as tmp:
        if s.report:
            from dhs.report.html import build_report

            build_report(os.path.join(tmp, "report"), meta=meta, definitions=defs, tables=tables, snr_hist=snr_hist,
                         audit_rows=audit_rows, audit_limit=s.audit.auc_limit, provenance=provenance,
                         null_audit_rows=null_rows, dimensions=dims,
                         failures=failures, gallery_pairs=pairs, gallery_options=s.gallery.model_dump(),
                         snr_column=s.snr_column, snr_hist_width_dex=s.snr_hist_width_dex,
                         targeting=targeting)
        for name, data in files.items():
            with open(os.path.join(tmp, name), "wb") as fh:
                fh.write(data)
        _publish(tmp, out_dir, opts)
    _place_joint_counts(joint_staged, join(out_dir, "counts.parquet"), opts)
    steps.done("tables and report", files=len(files))

    report = join(out_dir, "report", "index.html") if s.report else None
    flagged = [r["feature"] for r in audit_rows if r["flagged"]]
    null_flagged = [r["feature"] for r in null_rows if r["flagged"]]
    result = StageResult(stage=STAGE, output_path=out_dir, rows_in=rows_in, rows_out=rows_out, failures={},
                         extra={"report": report, "audit_flagged": flagged, "null_audit_flagged": null_flagged})
    counts_doc = {"rows_in": rows_in, "rows_counted": rows_out, "injections": n_inj, "controls": n_ctl,
                  "null_injections": n_null,
                  "valid_ok_by_population": {"injection": n_ok[0], "control": n_ok[1], "null": n_ok[2]},
                  "recovery_definitions": [d.name for d in defs], "audit_flagged": flagged,
                  "null_audit_flagged": null_flagged, **audit_counts,
                  "injections_resolved": inj_sum["n_resolved"], "injections_targeted": inj_sum["n_targeted"],
                  "gallery_pairs": len(pairs)}
    return finish_stage(cfg, result, [out_dir], inputs=inputs, counts=counts_doc, started=started,
                        extra={"thresholds": {d.name: d.params for d in defs}, "dimensions": dims,
                               "resolution_psf_column": s.psf_column,
                               "clean_selection": meta["clean selection"]})


def _publish(tmp: str, out_dir: str, opts: Any) -> None:
    """Move the finished local folder into place (rename locally; upload file by file to S3)."""
    if is_s3(out_dir):
        for root, _, names in os.walk(tmp):
            for n in names:
                p = os.path.join(root, n)
                rel = os.path.relpath(p, tmp).replace(os.sep, "/")
                with open(p, "rb") as fh:
                    write_bytes(join(out_dir, rel), fh.read(), opts)
        return
    final = os.path.abspath(out_dir)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    staging = f"{final}._tmp-{uuid.uuid4().hex[:12]}"
    shutil.copytree(tmp, staging)
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(staging, final)
