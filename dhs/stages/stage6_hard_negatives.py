"""Stage 6, hard negatives: a finder's highest-scoring non-lenses per stratum, with cutouts.

Reads the score table (``stage6.hard_negatives``; schema checked before any work), the negative pool
(``negatives/``), the positives and the sample written by stage 6, and writes
``phase6/<variant>/hard_negatives/<experiment_id>/`` (Parquet partitioned by ``region_split``, one row per hard
negative: the pool columns, ``hn_score``, ``hn_rank`` (1 = highest score of its stratum), ``in_sample`` (1 when
the object is also one of the sample's random negatives), ``label`` 0, ``weight`` 1 and the cutout columns)
with ``_stage_config.json`` holding the counts per stratum. Selection rules:
:mod:`dhs.reallens.hard_negatives`. The driver holds only per-stratum counts (a few dozen rows), whatever the
size of the score table or the pool.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from dhs.config import RunConfig
from dhs.io.paths import is_s3, to_spark_path
from dhs.io.stage_meta import read_stage_config
from dhs.reallens.crossmatch import DUPLICATE, MATCHED
from dhs.reallens.filters import near_any
from dhs.reallens.hard_negatives import (
    SCORE,
    SCORE_ID,
    ScoreTableError,
    check_score_schema,
    hard_negative_quotas,
    read_score_schemas,
)
from dhs.stages.common import StageResult, finish_stage, output_complete, spark_schema
from dhs.stages.stage6_cutouts import write_cutouts

STAGE = "6"


def check_score_table(cfg: RunConfig, spark: Any = None) -> None:
    """Fail fast on a score table that is missing or has the wrong columns (names the file and column).
    Local tables are checked file by file from their Parquet footers; s3:// tables through Spark."""
    hn = cfg.stage6.hard_negatives
    path = hn.score_table
    if not path:
        return
    if not is_s3(path):
        read_score_schemas(path, hn)
        return
    if spark is None:
        return
    from pyspark.sql.pandas.types import to_arrow_type

    try:
        sch = spark.read.parquet(to_spark_path(path)).schema
    except Exception as exc:
        raise ScoreTableError(f"score table {path}: cannot be read as Parquet ({type(exc).__name__}: {exc})") from exc
    check_score_schema(pa.schema([pa.field(f.name, to_arrow_type(f.dataType)) for f in sch.fields]), path,
                       hn.id_column, hn.score_column)


def _settings_doc(cfg: RunConfig, negatives_dir: str) -> dict[str, Any]:
    """What the hard negatives depend on besides the data: their settings and when the pool was made."""
    try:
        pool_made = read_stage_config(negatives_dir, cfg.s3.options()).get("ended_utc")
    except Exception:  # noqa: BLE001 - no record: never equal to a finished one
        pool_made = None
    return {**cfg.stage6.hard_negatives.model_dump(mode="json"), "exclusion_radius_arcsec": exclusion_radius(cfg),
            "pool_ended_utc": pool_made}


def exclusion_radius(cfg: RunConfig) -> float:
    """Radius (arcsec) around known lenses inside which no object becomes a hard negative."""
    hn = cfg.stage6.hard_negatives
    return float(hn.exclusion_radius_arcsec or cfg.stage6.filters.known_lens.radius_arcsec)


def hard_negatives_current(cfg: RunConfig, hn_dir: str, negatives_dir: str) -> bool:
    """True when ``hn_dir`` is complete and was made with the same hard-negative settings (score table,
    columns, pools, counts, exclusion radius) from the same pool; otherwise only the hard negatives are made
    again."""
    if cfg.force or not output_complete(cfg, hn_dir):
        return False
    try:
        doc = read_stage_config(hn_dir, cfg.s3.options())
    except Exception:  # noqa: BLE001 - an unreadable record means: make it again
        return False
    return doc.get("hard_negative_settings") == _settings_doc(cfg, negatives_dir)


def _nothing_selected(path: str, id_column: str, best: Any, pool: Any, per: dict[tuple[str, bool], int],
                      pos_counts: dict[str, int]) -> str:
    """Why no hard negative could be selected (with a few example ids of both tables when none matched)."""
    scored = sum(per.values())
    if scored == 0:
        ex_s = [r[0] for r in best.select(SCORE_ID).limit(3).collect()]
        ex_p = [r[0] for r in pool.select("galaxy_id").limit(3).collect()]
        return (f"score table {path}: none of its ids (column {id_column!r}, e.g. {ex_s}) is a galaxy_id of the "
                f"negative pool (e.g. {ex_p}); expected dhs galaxy_id strings '<brickname>_<objid>'")
    eligible = sum(n for (_, near), n in per.items() if not near)
    return (f"score table {path}: no hard negative to select — {scored} pool objects have a finite score, "
            f"{eligible} of them away from known lenses, strata with sample positives: {sorted(pos_counts)}")


def _scores(spark: Any, hn: Any) -> tuple[Any, Any]:
    """The score table's rows read as (id, score) and their counts (rows, null or NaN, below ``min_score``,
    with an id, distinct ids); returns (best finite score per id at or above ``min_score``, counts row)."""
    from pyspark.sql import functions as F

    raw = spark.read.parquet(to_spark_path(hn.score_table))
    scores = raw.select(F.col(hn.id_column).cast("string").alias(SCORE_ID),
                        F.col(hn.score_column).cast("double").alias(SCORE))
    finite = F.col(SCORE).isNotNull() & ~F.isnan(F.col(SCORE)) & F.col(SCORE_ID).isNotNull()
    below = F.lit(False) if hn.min_score is None else (F.col(SCORE) < F.lit(float(hn.min_score)))
    srow = scores.agg(F.count(F.lit(1)).alias("rows"),
                      F.sum(F.when(~finite, 1).otherwise(0)).alias("null_or_nan"),
                      F.sum(F.when(finite & below, 1).otherwise(0)).alias("below_min_score"),
                      F.count(SCORE_ID).alias("with_id"), F.countDistinct(SCORE_ID).alias("ids")).collect()[0]
    return scores.where(finite & ~below).groupBy(SCORE_ID).agg(F.max(SCORE).alias(SCORE)), srow


def _flag_near_lenses(scored: Any, lenses: Any, radius: float) -> Any:
    """``scored`` with ``_near_lens``: a known lens lies within ``radius`` arcsec (persisted)."""
    from pyspark.sql.pandas.types import to_arrow_type

    lens_ra, lens_dec = lenses.ra.copy(), lenses.dec.copy()
    in_schema = pa.schema([pa.field(f.name, to_arrow_type(f.dataType)) for f in scored.schema.fields])
    flag_schema = in_schema.append(pa.field("_near_lens", pa.bool_()))

    def flag_near(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            near = near_any(b.column("ra").to_numpy(zero_copy_only=False),
                            b.column("dec").to_numpy(zero_copy_only=False), lens_ra, lens_dec, radius)
            yield pa.RecordBatch.from_arrays(list(b.columns) + [pa.array(near, pa.bool_())], schema=flag_schema)

    return scored.mapInArrow(flag_near, spark_schema(flag_schema)).persist()


def _chosen(spark: Any, flagged: Any, quotas: dict[str, dict[str, Any]], sample: Any) -> Any:
    """The hard negatives: per stratum the ``take`` highest scores away from known lenses (ties: smaller
    sampling hash, then galaxy_id), with ``hn_rank``, ``in_sample``, ``label`` 0 and ``weight`` 1."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    qrows = [(s, int(q["take"])) for s, q in quotas.items()]
    qdf = spark.createDataFrame(qrows or [("", 0)], "stratum string, _take long")
    w = Window.partitionBy("stratum").orderBy(F.desc(SCORE), F.asc("sample_hash"), F.asc("galaxy_id"))
    in_sample = sample.where(F.col("label") == 0).select("galaxy_id").distinct().withColumn("in_sample", F.lit(1))
    return (flagged.where(~F.col("_near_lens")).drop("_near_lens")
            .join(F.broadcast(qdf), "stratum", "inner")
            .withColumn("hn_rank", F.row_number().over(w)).where(F.col("hn_rank") <= F.col("_take"))
            .drop("_take")
            .join(in_sample, "galaxy_id", "left")
            .withColumn("in_sample", F.coalesce(F.col("in_sample"), F.lit(0)).cast("int"))
            .withColumn("label", F.lit(0)).withColumn("weight", F.lit(1.0))
            .withColumn("hn_rank", F.col("hn_rank").cast("long")))


def strata_counts(pool_per: dict[str, int], quotas: dict[str, dict[str, Any]], per: dict[tuple[str, bool], int],
                  pos_counts: dict[str, int], written: list[Any]) -> dict[str, dict[str, Any]]:
    """Per stratum: pool size, scored objects, excluded near a lens, eligible, positives, target, selected
    (all, N1, N2), selected also in the sample, score range of the selected, from the counts of the step
    (``per``: scored objects per (stratum, near a lens); ``written``: rows per (stratum, pool) written)."""
    eligible = {s: n for (s, near), n in per.items() if not near}
    near = {s: n for (s, near_), n in per.items() if near_}
    strata: dict[str, dict[str, Any]] = {}
    for s in sorted(set(pool_per) | set(quotas)):
        q = quotas.get(s, {"target": 0, "take": 0})
        d = strata[s] = {"pool": pool_per.get(s, 0), "scored": eligible.get(s, 0) + near.get(s, 0),
                         "excluded_near_lens": near.get(s, 0), "eligible": eligible.get(s, 0),
                         "positives": pos_counts.get(s, 0), "target": int(q["target"]), "selected": 0,
                         "selected_n1": 0, "selected_n2": 0, "in_sample": 0, "min_score": None, "max_score": None}
        for r in (r for r in written if r["stratum"] == s):
            d["selected"] += int(r["n"])
            d[f"selected_{str(r['pool']).lower()}"] += int(r["n"])
            d["in_sample"] += int(r["in_sample"] or 0)
            for k, pick in (("min_score", min), ("max_score", max)):
                d[k] = r[k] if d[k] is None else pick(d[k], r[k])
    return strata


def hard_negative_counts(hn: Any, srow: Any, strata: dict[str, dict[str, Any]], radius: float,
                         cut: dict[str, Any]) -> dict[str, Any]:
    """The ``counts`` of the hard negatives' ``_stage_config.json``."""
    return {"hard_negatives": {
        "score_table": hn.score_table, "rows_in": int(srow["rows"]), "score_ids": int(srow["ids"]),
        "null_or_nan_scores": int(srow["null_or_nan"] or 0), "below_min_score": int(srow["below_min_score"] or 0),
        "duplicate_id_rows": int(srow["with_id"]) - int(srow["ids"]),
        "scored_pool_objects": sum(d["scored"] for d in strata.values()),
        "excluded_near_lens": sum(d["excluded_near_lens"] for d in strata.values()),
        "exclusion_radius_arcsec": radius, "pools": list(hn.pools), "count": hn.count,
        "rows_out": sum(d["selected"] for d in strata.values()), "strata": strata, "cutouts": cut}}


def hard_negatives_step(spark: Any, cfg: RunConfig, lenses: Any, dirs: dict[str, str],
                        hn_dir: str) -> StageResult:
    """Select and cut the hard negatives from the stage-6 outputs in ``dirs`` (module docstring). ``lenses``:
    the run's known-lens table (:func:`dhs.stages.stage6.load_lenses`: ``ra``, ``dec`` in degrees,
    ``source``)."""
    from pyspark.sql import functions as F

    started = time.time()
    hn = cfg.stage6.hard_negatives
    check_score_table(cfg, spark)
    radius = exclusion_radius(cfg)
    best, srow = _scores(spark, hn)
    pool = spark.read.parquet(to_spark_path(dirs["negatives"])).where(F.col("pool").isin(list(hn.pools)))
    pos = spark.read.parquet(to_spark_path(dirs["positives"]))
    lens_objects = (pos.where(F.col("match_status").isin(MATCHED, DUPLICATE) & F.col("galaxy_id").isNotNull())
                    .select("galaxy_id").distinct())
    scored = pool.join(best, "galaxy_id", "inner").join(lens_objects, "galaxy_id", "left_anti")
    flagged = _flag_near_lenses(scored, lenses, radius)
    try:
        per = {(r["stratum"], bool(r["_near_lens"])): int(r["count"])
               for r in flagged.groupBy("stratum", "_near_lens").count().collect()}
        pool_per = {r["stratum"]: int(r["count"]) for r in pool.groupBy("stratum").count().collect()}
        sample = spark.read.parquet(to_spark_path(dirs["sample"]))
        pos_counts = {r["stratum"]: int(r["count"])
                      for r in sample.where(F.col("label") == 1).groupBy("stratum").count().collect()}
        quotas = hard_negative_quotas(pos_counts, {s: n for (s, near), n in per.items() if not near}, hn)
        n_take = sum(int(q["take"]) for q in quotas.values())
        if n_take == 0:
            raise ScoreTableError(_nothing_selected(hn.score_table, hn.id_column, best, pool, per, pos_counts))
        cut = write_cutouts(spark, cfg, _chosen(spark, flagged, quotas, sample), hn_dir, n_take)
    finally:
        flagged.unpersist()

    written = (spark.read.parquet(to_spark_path(hn_dir)).groupBy("stratum", "pool")
               .agg(F.count(F.lit(1)).alias("n"), F.min(SCORE).alias("min_score"), F.max(SCORE).alias("max_score"),
                    F.sum("in_sample").alias("in_sample")).collect())
    strata = strata_counts(pool_per, quotas, per, pos_counts, written)
    counts = hard_negative_counts(hn, srow, strata, radius, cut)
    n_sel = counts["hard_negatives"]["rows_out"]
    if n_sel != n_take:
        raise RuntimeError(f"stage 6 hard negatives: {n_sel} rows written, quotas ask {n_take}")
    result = StageResult(stage=STAGE, output_path=hn_dir, rows_in=int(srow["rows"]), rows_out=n_sel,
                         failures=dict(cut["failures_by_kind"]), extra={"counts": counts})
    return finish_stage(cfg, result, [hn_dir], inputs=[hn.score_table, dirs["negatives"], lenses.source],
                        counts=counts, started=started,
                        extra={"hard_negative_settings": _settings_doc(cfg, dirs["negatives"])})
