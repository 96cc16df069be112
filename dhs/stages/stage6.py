"""Stage 6 — real-lens training sets (Paper IV parity): positives, negative pools, sample, cutouts, validation.

Flow (pure logic in :mod:`dhs.reallens`; this module is the Spark wiring):

1. read the known-lens table on the driver (``stage6.lens_catalog`` or ``lenscat``; fail fast naming it);
2. read the sweeps in parallel, one task per file or row chunk (the file list and chunking of stage 3:
   :func:`dhs.stages.sweep_inputs.resolve_sweep_paths`), each task emitting candidate lens–object pairs, the
   negative-pool rows that pass the Paper IV filters (with derived columns, N2 category, HEALPix split and
   sampling hash) and a summary row (rows read, per-filter counts, read error);
3. driver: resolve the crossmatch (nearest, deterministic ties and duplicates) → ``positives/`` (one row
   per lens: matched, unmatched or duplicate, with ``passes_filters`` / ``filter_failed``: the pool filters
   of ``stage6.positive_filters`` its object fails); ``negatives/`` ← the pool;
4. quotas per stratum from the matched positives that pass the same filters as the negatives (the others
   are counted and listed with their reasons in ``_stage_config.json``, never silently kept) and pool
   counts; negatives ranked by their 64-bit hash
   within (stratum, pool) windows → ``sample/`` (matched positives + chosen negatives, ``label`` 1/0);
5. cutouts of every sample row (coadd store or cutout service) with quality metrics and shortcut features
   → ``cutouts/``; failures are rows with ``cutout_ok = 0`` and ``error``;
6. validation (shortcut audit, split proportions, disjointness) → ``validation/`` (audit table,
   ``_validation.json``, ``_report.md`` — underscore names so Parquet readers skip them).

7. with ``stage6.hard_negatives.score_table`` set: the finder's highest-scoring non-lenses per stratum →
   ``hard_negatives/`` (:mod:`dhs.stages.stage6_hard_negatives`). When the other outputs exist already, only
   this step runs (again whenever its settings change).

All outputs live under ``phase6/<variant>/<kind>/<experiment_id>/`` with ``_stage_config.json`` (written
last) holding the counts of every step; each step's rows in = rows out (+ rows rejected, with reasons).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dhs.config import RunConfig
from dhs.io.lens_tables import LensTable, lenscat_table, read_lens_table_any
from dhs.io.paths import to_spark_path
from dhs.logs import StageSteps
from dhs.reallens.confusers import shares_from_counts
from dhs.reallens.crossmatch import DUPLICATE, MATCHED, UNMATCHED, assign_tiers, resolve_matches
from dhs.reallens.derived import hash_split, healpix_index
from dhs.reallens.filters import FILTER_ORDER, rejection_report
from dhs.reallens.sampling import gates, stratum_quotas
from dhs.reallens.sweep_task import CANDIDATE_SCHEMA, OBJECT_SCHEMA, process_sweep
from dhs.stages.common import (
    StageResult,
    finish_stage,
    should_skip,
    skipped_result,
    stage_output_dir,
    write_parquet_atomically,
)
from dhs.stages.stage6_cutouts import write_cutouts
from dhs.stages.stage6_hard_negatives import check_score_table, hard_negatives_current, hard_negatives_step
from dhs.stages.stage6_validation import cross_split_pairs, validate, write_validation
from dhs.stages.sweep_inputs import (
    check_readable,
    read_sweeps_in_tasks,
    resolve_sweep_paths,
    unreadable_sweeps,
)

__all__ = ["KINDS", "LensTable", "cross_split_pairs", "load_lenses", "positives_table", "run"]

STAGE = "6"
KINDS = ("positives", "negatives", "sample", "cutouts", "validation")
HARD_KIND = "hard_negatives"

_LENS_FIELDS = [("lens_id", pa.string()), ("lens_ra", pa.float64()), ("lens_dec", pa.float64()),
                ("grade", pa.string()), ("reference", pa.string()), ("tier", pa.string()),
                ("weight", pa.float64()), ("match_status", pa.string()), ("duplicate_of", pa.string()),
                ("n_within", pa.int64()), ("sep_arcsec", pa.float64())]


# ------------------------------------------------------------------------------------------- inputs
def load_lenses(cfg: RunConfig) -> LensTable:
    """The known-lens table of the run; a clear error when none is configured."""
    st = cfg.stage6
    cols = st.lens_columns
    kw = {"ra": cols.ra, "dec": cols.dec, "grade": cols.grade, "reference": cols.reference, "name": cols.name}
    if st.lens_catalog:
        return read_lens_table_any(st.lens_catalog, st.lens_format, cfg.s3.options(), **kw)
    if st.use_lenscat:
        return lenscat_table(**kw)
    raise ValueError("stage 6 needs a known-lens catalogue: set stage6.lens_catalog to a CSV/TSV/FITS table with "
                     "RA/Dec (deg), grade and reference columns, or stage6.use_lenscat: true with the PyPI package "
                     "'lenscat' installed")


def _task_schema() -> pa.Schema:
    """The rows of the sweep tasks: candidates and negatives (``_kind`` "pos" / "neg")."""
    return CANDIDATE_SCHEMA.append(pa.field("_kind", pa.string()))


def _pad(table: pa.Table, kind: str, schema: pa.Schema) -> pa.Table:
    n = table.num_rows
    cols = []
    for f in schema:
        if f.name == "_kind":
            cols.append(pa.array([kind] * n, pa.string()))
        elif f.name in table.column_names:
            cols.append(table[f.name])
        else:
            cols.append(pa.nulls(n, f.type))
    return pa.Table.from_arrays(cols, schema=schema)


def _read_sweeps(spark: Any, cfg: RunConfig, paths: list[str], lenses: LensTable) -> tuple[Any, list[dict[str, Any]]]:
    """Every sweep read by a Spark task (:func:`dhs.reallens.sweep_task.process_sweep`): the persisted rows
    (candidates and pool rows, told apart by ``_kind``) and the per-task summaries."""
    st, s3, seed = cfg.stage6, cfg.s3.options(), int(cfg.seed)
    lens_ra, lens_dec = lenses.ra.copy(), lenses.dec.copy()
    schema = _task_schema()

    def rows_of(path: str, rows: tuple[int, int] | None) -> tuple[list[pa.Table], dict[str, Any]]:
        cand, neg, summ = process_sweep(path, lens_ra, lens_dec, st, seed, s3, rows)
        return [_pad(t, kind, schema) for t, kind in ((cand, "pos"), (neg, "neg")) if t is not None], summ

    return read_sweeps_in_tasks(spark, cfg, paths, rows_of, schema)


def filter_counts(summaries: list[dict[str, Any]]) -> tuple[dict[str, int], dict[str, int]]:
    """Rows failing each pool filter and rows rejected by each filter first (filter order), over all tasks."""
    return ({k: sum(s["failed"][k] for s in summaries) for k in FILTER_ORDER},
            {k: sum(s["first_failed"][k] for s in summaries) for k in FILTER_ORDER})


# ------------------------------------------------------------------------------------------ positives
def positives_table(lenses: LensTable, cand: pa.Table, cfg: RunConfig) -> tuple[pa.Table, dict[str, Any]]:
    """One row per lens (lens columns + the matched object's columns, null when unmatched, + ``passes_filters``
    1/0 and ``filter_failed``, the positive filters the object fails, both null without an object) and the
    counts: lenses per match status and ``filters`` (:func:`dhs.reallens.filters.rejection_report` of the
    matched lenses whose object fails a positive filter — they stay out of the sample)."""
    st = cfg.stage6
    res = resolve_matches(lenses.lens_id.tolist(), cand["lens_index"].to_numpy(zero_copy_only=False),
                          cand["galaxy_id"].to_pylist(), cand["sep_arcsec"].to_numpy(zero_copy_only=False))
    tier, weight = assign_tiers(lenses.grade.tolist(), st.tiers.grade_to_tier, st.tiers.default_tier,
                                st.tiers.weights)
    n = len(lenses)
    idx = res.pair_index
    has = idx >= 0
    take = pa.array(np.where(has, idx, 0) if cand.num_rows else np.zeros(0, np.int64), pa.int64())
    obj = cand.select([f.name for f in OBJECT_SCHEMA])
    if cand.num_rows:
        obj = obj.take(take)
        mask = pa.array(~has)
        obj = pa.Table.from_arrays([pc.if_else(mask, pa.nulls(n, c.type), c) for c in obj.columns],
                                   schema=OBJECT_SCHEMA)
    else:
        obj = pa.Table.from_arrays([pa.nulls(n, f.type) for f in OBJECT_SCHEMA], schema=OBJECT_SCHEMA)
    # unmatched lenses still get a split/healpix from the lens position (same rule as every object)
    lpix = healpix_index(lenses.ra, lenses.dec, st.healpix_nside)
    lsplit = hash_split(lpix, st.healpix_nside, cfg.seed, st.split_fractions)
    hp = np.where(has, obj["healpix"].fill_null(-1).to_numpy(zero_copy_only=False), lpix)
    split = np.where(has, np.asarray(obj["region_split"].to_pylist(), dtype=object), lsplit)
    obj = obj.set_column(obj.schema.get_field_index("healpix"), "healpix", pa.array(hp.astype(np.int64)))
    obj = obj.set_column(obj.schema.get_field_index("region_split"), "region_split",
                         pa.array([str(s) for s in split.tolist()], pa.string()))
    lens_vals = {"lens_id": lenses.lens_id.tolist(), "lens_ra": lenses.ra, "lens_dec": lenses.dec,
                 "grade": lenses.grade.tolist(), "reference": lenses.reference.tolist(), "tier": tier.tolist(),
                 "weight": weight, "match_status": res.status.tolist(), "duplicate_of": res.duplicate_of.tolist(),
                 "n_within": res.n_within, "sep_arcsec": res.sep_arcsec}
    out = obj
    for i, (name, typ) in enumerate(_LENS_FIELDS):
        out = out.add_column(i, name, pa.array(lens_vals[name], typ))
    failed = (cand["filter_failed"].take(take).to_pylist() if cand.num_rows else [None] * n)
    failed = [f if h else None for f, h in zip(failed, has.tolist())]
    out = out.append_column("passes_filters", pa.array([None if f is None else int(f == "") for f in failed],
                                                       pa.int32()))
    out = out.append_column("filter_failed", pa.array(failed, pa.string()))
    matched = res.status == MATCHED
    report = rejection_report(lenses.lens_id[matched].tolist(), [failed[i] for i in np.flatnonzero(matched)],
                              res.object_key[matched].tolist())
    return out, {**res.counts(), "filters": report}


def _write_positives(spark: Any, cfg: RunConfig, lenses: LensTable, raw: Any, out_dir: str
                     ) -> tuple[Any, int, dict[str, Any]]:
    """Crossmatch the candidate pairs on the driver and write ``positives/``; returns the written table, the
    number of candidate pairs and the report of :func:`positives_table`."""
    from pyspark.sql import functions as F

    cand_rows = raw.where(F.col("_kind") == "pos").drop("_kind", "_summary")
    cand = pa.Table.from_pylist([r.asDict() for r in cand_rows.collect()], schema=CANDIDATE_SCHEMA)
    pos_tbl, report = positives_table(lenses, cand, cfg)
    write_parquet_atomically(spark.createDataFrame(pos_tbl).coalesce(1), out_dir, partition_by=("region_split",))
    return spark.read.parquet(to_spark_path(out_dir)), cand.num_rows, report


def _write_pool(spark: Any, cfg: RunConfig, raw: Any, out_dir: str) -> Any:
    """Write the negative pool (``negatives/``: the rows that passed the pool filters); returns it read back."""
    from pyspark.sql import functions as F

    neg = raw.where(F.col("_kind") == "neg").select(*[f.name for f in OBJECT_SCHEMA])
    write_parquet_atomically(neg.repartition(max(1, cfg.spark.shuffle_partitions), "healpix")
                             .sortWithinPartitions("galaxy_id"), out_dir, partition_by=("region_split",))
    return spark.read.parquet(to_spark_path(out_dir))


# --------------------------------------------------------------------------------------------- sample
def _write_sample(spark: Any, cfg: RunConfig, positives: Any, pool: Any, pool_counts: dict, out_dir: str
                  ) -> tuple[Any, dict[str, Any]]:
    """Quotas per stratum from the matched positives that pass the filters; negatives ranked by their 64-bit
    hash within (stratum, pool) windows; writes ``sample/`` (positives label 1, negatives label 0) and returns
    it read back with the quotas."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    obj_cols = [f.name for f in OBJECT_SCHEMA]
    matched = positives.where((F.col("match_status") == MATCHED) & (F.col("passes_filters") == 1))
    pos_counts = {r["stratum"]: int(r["count"]) for r in matched.groupBy("stratum").count().collect()}
    quotas = stratum_quotas(pos_counts, pool_counts, cfg.stage6.sampling)
    qrows = [(s, p, int(q[f"{p.lower()}_take"])) for s, q in quotas.items() for p in ("N1", "N2")]
    qdf = spark.createDataFrame(qrows or [("", "N1", 0)], "stratum string, pool string, take long")
    w = Window.partitionBy("stratum", "pool").orderBy("sample_hash", "galaxy_id")
    chosen = (pool.join(F.broadcast(qdf), ["stratum", "pool"], "inner")
              .withColumn("_rank", F.row_number().over(w)).where(F.col("_rank") <= F.col("take"))
              .drop("_rank", "take"))
    lens_null = [F.lit(None).cast(t).alias(n) for n, t in (
        ("lens_id", "string"), ("lens_ra", "double"), ("lens_dec", "double"), ("grade", "string"),
        ("reference", "string"), ("tier", "string"), ("sep_arcsec", "double"))]
    neg_s = chosen.select(*obj_cols, *lens_null, F.lit(1.0).alias("weight"), F.lit(0).alias("label"))
    pos_s = matched.select(*[c for c in obj_cols if c not in ("pool", "n2_category")],
                           F.lit("positive").alias("pool"), F.lit("").alias("n2_category"),
                           "lens_id", "lens_ra", "lens_dec", "grade", "reference", "tier", "sep_arcsec",
                           "weight", F.lit(1).alias("label"))
    sample = pos_s.unionByName(neg_s)
    write_parquet_atomically(sample.repartition(max(1, cfg.spark.shuffle_partitions), "brickname")
                             .sortWithinPartitions("galaxy_id"), out_dir, partition_by=("region_split",))
    return spark.read.parquet(to_spark_path(out_dir)), quotas


def group_counts(rows: list[Any], *keys: str) -> dict[Any, int]:
    """{key tuple (or value with one key): count} of grouped rows with a ``count`` column."""
    return {(r[keys[0]] if len(keys) == 1 else tuple(r[k] for k in keys)): int(r["count"]) for r in rows}


def sample_counts(groups: list[Any]) -> tuple[dict[tuple[str, str], int], int]:
    """From the sample rows counted per (label, stratum, pool): negatives per (stratum, pool) and positives."""
    sel = {(r["stratum"], r["pool"]): int(r["count"]) for r in groups if int(r["label"]) == 0}
    return sel, sum(int(r["count"]) for r in groups if int(r["label"]) == 1)


# --------------------------------------------------------------------------------------------- counts
def stage6_counts(cfg: RunConfig, lenses: LensTable, paths: list[str], summaries: list[dict[str, Any]],
                  pos: dict[str, Any], pool: dict[str, Any], sample: dict[str, Any], cut_counts: dict[str, Any],
                  validation: dict[str, Any]) -> dict[str, Any]:
    """The ``counts`` of ``_stage_config.json``, one entry per step (rows in, rows out, rejections)."""
    st = cfg.stage6
    failed, first_failed = filter_counts(summaries)
    rows_read = sum(s["rows_read"] for s in summaries)
    rep = pos["report"]["filters"]
    match_counts = {k: int(pos["report"][k]) for k in (MATCHED, UNMATCHED, DUPLICATE)}
    n_pos_ok = match_counts[MATCHED] - rep["rejected"]
    return {
        "sweeps": {"files": len(paths),
                   "unreadable": [{"path": p, "error": e} for p, e in unreadable_sweeps(summaries)],
                   "rows_read": rows_read,
                   "per_file": [{k: s[k] for k in ("path", "rows", "error", "rows_read", "pool_rows",
                                                   "candidate_pairs")} for s in summaries]},
        "positives": {"rows_in": len(lenses), "rows_out": pos["rows"], **match_counts,
                      "candidate_pairs": pos["candidate_pairs"], "match_radius_arcsec": st.match_radius_arcsec,
                      "lens_source": lenses.source, "lens_columns": lenses.columns,
                      "positive_filters": list(st.positive_filters), "in_sample": n_pos_ok,
                      "rejected_by_filters": rep["rejected"],
                      "rejected_first_filter": rep["rejected_first_filter"],
                      "failed_each_filter": rep["failed_each_filter"],
                      "rejected_lenses": [{"lens_id": r["key"], "galaxy_id": r["object"], "filters": r["filters"]}
                                          for r in rep["rows"]]},
        "negatives": {"rows_in": rows_read, "rows_out": pool["n"], "rejected": sum(first_failed.values()),
                      "rejected_first_filter": first_failed, "failed_each_filter": failed, "pool": pool["shares"]},
        "sample": {"rows_in": n_pos_ok + pool["n"], "rows_out": sample["n"],
                   "positives": sample["positives"], "negatives": sample["negatives"],
                   "not_selected": pool["n"] - sample["negatives"], "quotas": sample["quotas"],
                   "gates": sample["gates"]},
        "cutouts": cut_counts,
        "validation": {"rows_in": validation["audit_rows_in"], "stamps_audited": validation["audit_stamps"],
                       "rows_out": len(validation["audit"]),
                       "flags": {r["feature"]: r["flag"] for r in validation["audit"]}},
    }


def validation_counts(lenses: LensTable, pos: dict[str, Any], pool: dict[str, Any], sample: dict[str, Any]
                      ) -> dict[str, Any]:
    """The ``counts`` block of ``_validation.json``."""
    rep = pos["report"]
    match_counts = {k: int(rep[k]) for k in (MATCHED, UNMATCHED, DUPLICATE)}
    return {"lenses": len(lenses), **match_counts, "positives_rejected": rep["filters"]["rejected"],
            "positives_rejected_first_filter": rep["filters"]["rejected_first_filter"], "pool": pool["n"],
            "sample_positives": sample["positives"], "sample_negatives": sample["negatives"]}


# ---------------------------------------------------------------------------------------------- run
def run(spark: Any, cfg: RunConfig) -> StageResult:
    """Run stage 6 (module docstring). Skips when every output exists and ``force`` is false."""
    dirs = {k: stage_output_dir(cfg, STAGE, k) for k in KINDS}
    hn_dir = stage_output_dir(cfg, STAGE, HARD_KIND) if cfg.stage6.hard_negatives.score_table else None
    if hn_dir:
        check_score_table(cfg, spark)
    if should_skip(cfg, list(dirs.values())):
        if hn_dir is None or hard_negatives_current(cfg, hn_dir, dirs["negatives"]):
            return skipped_result(STAGE, dirs["sample"])
        return hard_negatives_step(spark, cfg, load_lenses(cfg), dirs, hn_dir)
    started = time.time()
    steps = StageSteps(STAGE, spark)
    lenses = load_lenses(cfg)
    paths = resolve_sweep_paths(cfg)
    raw, summaries = _read_sweeps(spark, cfg, paths, lenses)
    try:
        check_readable(STAGE, unreadable_sweeps(summaries), cfg.stage3.allow_missing_sweeps)
        rows_read = sum(s["rows_read"] for s in summaries)
        steps.done("read sweeps", files=len(paths), rows_read=rows_read, lenses=len(lenses))
        positives, n_cand, pos_report = _write_positives(spark, cfg, lenses, raw, dirs["positives"])
        pos = {"rows": positives.count(), "candidate_pairs": n_cand, "report": pos_report}
        pool_df = _write_pool(spark, cfg, raw, dirs["negatives"])
    finally:
        raw.unpersist()
    pool_counts = group_counts(pool_df.groupBy("stratum", "pool").count().collect(), "stratum", "pool")
    pool = {"n": sum(pool_counts.values()), "shares": shares_from_counts(
        group_counts(pool_df.groupBy("pool", "n2_category").count().collect(), "pool", "n2_category"))}
    rejected = sum(filter_counts(summaries)[1].values())
    if rows_read != pool["n"] + rejected:
        raise RuntimeError(f"stage 6: sweep rows read ({rows_read}) != pool ({pool['n']}) + rejected ({rejected})")

    samp, quotas = _write_sample(spark, cfg, positives, pool_df, pool_counts, dirs["sample"])
    sel_counts, n_sample_pos = sample_counts(samp.groupBy("label", "stratum", "pool").count().collect())
    sample = {"positives": n_sample_pos, "negatives": sum(sel_counts.values()), "quotas": quotas,
              "gates": gates(quotas, sel_counts, cfg.stage6.sampling)}
    sample["n"] = sample["positives"] + sample["negatives"]
    steps.done("positives, pool and sample", positives=pos["rows"], pool=pool["n"], sample=sample["n"])
    cut_counts = write_cutouts(spark, cfg, samp, dirs["cutouts"], sample["n"])
    steps.done("cutouts", rows=sample["n"])

    summary = validate(spark, cfg, dirs["cutouts"], samp)
    summary.update(counts=validation_counts(lenses, pos, pool, sample), n2_share=pool["shares"]["n2_share"],
                   gates=sample["gates"])
    write_validation(spark, cfg, summary, dirs["validation"])
    counts = stage6_counts(cfg, lenses, paths, summaries, pos, pool, sample, cut_counts, summary)
    failures = dict(cut_counts["failures_by_kind"])
    if counts["sweeps"]["unreadable"]:
        failures["unreadable_sweep"] = len(counts["sweeps"]["unreadable"])
    result = StageResult(stage=STAGE, output_path=dirs["sample"], rows_in=sample["n"], rows_out=cut_counts["rows_out"],
                         failures=failures, extra={"dirs": dirs, "counts": counts})
    result = finish_stage(cfg, result, list(dirs.values()), inputs=paths + [lenses.source, cfg.survey_root],
                          counts=counts, started=started, extra={"dirs": dirs})
    if hn_dir:
        hn = hard_negatives_step(spark, cfg, lenses, dirs, hn_dir)
        result.extra["hard_negatives"] = hn.extra
        result.extra["dirs"] = {**dirs, HARD_KIND: hn_dir}
    return result
