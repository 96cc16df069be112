"""Stage 6 — real-lens training sets (Paper IV parity): positives, negative pools, sample, cutouts, validation.

Flow (pure logic in :mod:`dhs.reallens`; this module is the Spark wiring):

1. read the known-lens table on the driver (``stage6.lens_catalog`` or ``lenscat``; fail fast naming it);
2. read the sweeps in parallel, one task per file or row chunk (the file list and chunking of stage 3:
   :func:`dhs.stages.stage3.resolve_sweep_paths`), each task emitting candidate lens–object pairs, the
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

import json
import os
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dhs.config import RunConfig
from dhs.io.paths import is_s3, join, read_bytes, to_spark_path, write_bytes
from dhs.logs import StageSteps
from dhs.reallens.confusers import shares_from_counts
from dhs.reallens.crossmatch import DUPLICATE, MATCHED, UNMATCHED, assign_tiers, resolve_matches
from dhs.reallens.cutouts import CutoutServiceClient, cutout_columns, cutout_row
from dhs.reallens.derived import hash_split, healpix_index
from dhs.reallens.filters import FILTER_ORDER, rejection_report
from dhs.reallens.lenses import LensTable, lenscat_table, read_lens_table
from dhs.reallens.sampling import gates, stratum_quotas
from dhs.reallens.sweep_task import CANDIDATE_SCHEMA, OBJECT_SCHEMA, process_sweep
from dhs.reallens.validation import (
    audit,
    cap_per_class,
    disjointness_summary,
    report_markdown,
    sky_cell_keys,
    split_proportions_from_counts,
)
from dhs.sampling.hashing import stable_hash64
from dhs.stages.common import (
    StageResult,
    finish_stage,
    should_skip,
    skipped_result,
    spark_schema,
    stage_output_dir,
    write_parquet_atomically,
)
from dhs.stages.stage6_hard_negatives import check_score_table, hard_negatives_current, hard_negatives_step
from dhs.stages.sweep_inputs import resolve_sweep_paths, sweep_read_tasks

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
        if is_s3(st.lens_catalog):
            suffix = "".join(os.path.basename(st.lens_catalog).partition(".")[1:]) or ".tbl"
            with tempfile.TemporaryDirectory() as d:
                local = os.path.join(d, "lenses" + (suffix if suffix.startswith(".") else "." + suffix))
                with open(local, "wb") as fh:
                    fh.write(read_bytes(st.lens_catalog, cfg.s3.options()))
                t = read_lens_table(local, st.lens_format, **kw)
            return LensTable(t.ra, t.dec, t.grade, t.reference, t.lens_id, st.lens_catalog, t.columns)
        return read_lens_table(st.lens_catalog, st.lens_format, **kw)
    if st.use_lenscat:
        return lenscat_table(**kw)
    raise ValueError("stage 6 needs a known-lens catalogue: set stage6.lens_catalog to a CSV/TSV/FITS table with "
                     "RA/Dec (deg), grade and reference columns, or stage6.use_lenscat: true with the PyPI package "
                     "'lenscat' installed")


def _task_schema() -> pa.Schema:
    """One mapInArrow output carrying candidates, negatives and summaries (``_kind`` tells which)."""
    return CANDIDATE_SCHEMA.append(pa.field("_kind", pa.string())).append(pa.field("_summary", pa.string()))


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


def _read_sweeps(spark: Any, cfg: RunConfig, lenses: LensTable) -> tuple[Any, list[dict[str, Any]], list[str]]:
    """Spark DataFrame of task outputs (persisted), the per-task summaries and the sweep paths."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    st = cfg.stage6
    s3 = cfg.s3.options()
    seed = int(cfg.seed)
    lens_ra, lens_dec = lenses.ra.copy(), lenses.dec.copy()
    schema = _task_schema()

    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for path, a, b in zip(*(batch.column(i).to_pylist() for i in range(3))):
                rows = None if a < 0 else (a, b)
                cand, neg, summ = process_sweep(path, lens_ra, lens_dec, st, seed, s3, rows)
                for t, kind in ((cand, "pos"), (neg, "neg")):
                    if t is not None and t.num_rows:
                        yield from _pad(t, kind, schema).to_batches(max_chunksize=4096)
                srow = {f.name: pa.nulls(1, f.type) for f in schema}
                srow["_kind"] = pa.array(["summary"], pa.string())
                srow["_summary"] = pa.array([json.dumps(summ, sort_keys=True)], pa.string())
                yield pa.RecordBatch.from_arrays([srow[f.name] for f in schema], schema=schema)

    paths = resolve_sweep_paths(cfg)
    tasks = sweep_read_tasks(cfg, paths)
    tschema = T.StructType([T.StructField("path", T.StringType()), T.StructField("start", T.LongType()),
                            T.StructField("stop", T.LongType())])
    tdf = spark.createDataFrame(spark.sparkContext.parallelize(tasks, max(1, len(tasks))), tschema)
    raw = tdf.mapInArrow(task, spark_schema(schema)).persist()
    summaries = [json.loads(r[0]) for r in raw.where(F.col("_kind") == "summary").select("_summary").collect()]
    summaries.sort(key=lambda s: (s["path"], s["rows"] or [-1]))
    return raw, summaries, paths


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


# ---------------------------------------------------------------------------------------------- run
def run(spark: Any, cfg: RunConfig) -> StageResult:
    """Run stage 6 (module docstring). Skips when every output exists and ``force`` is false."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

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
    st = cfg.stage6
    lenses = load_lenses(cfg)
    raw, summaries, paths = _read_sweeps(spark, cfg, lenses)
    unreadable = sorted({s["path"]: s["error"] for s in summaries if s["error"]}.items())
    if unreadable and not cfg.stage3.allow_missing_sweeps:
        raw.unpersist()
        raise RuntimeError(f"stage 6: {len(unreadable)} sweep file(s) could not be read (set "
                           "stage3.allow_missing_sweeps: true to skip them): "
                           + "; ".join(f"{p}: {e}" for p, e in unreadable))
    rows_read = sum(s["rows_read"] for s in summaries)
    steps.done("read sweeps", files=len(paths), rows_read=rows_read, lenses=len(lenses))
    failed = {k: sum(s["failed"][k] for s in summaries) for k in FILTER_ORDER}
    first_failed = {k: sum(s["first_failed"][k] for s in summaries) for k in FILTER_ORDER}

    # ---- positives
    cand_rows = raw.where(F.col("_kind") == "pos").drop("_kind", "_summary")
    cand = pa.Table.from_pylist([r.asDict() for r in cand_rows.collect()], schema=CANDIDATE_SCHEMA)
    pos_tbl, pos_report = positives_table(lenses, cand, cfg)
    match_counts = {k: int(pos_report[k]) for k in (MATCHED, UNMATCHED, DUPLICATE)}
    pos_rejected = pos_report["filters"]
    n_pos_ok = match_counts[MATCHED] - pos_rejected["rejected"]
    pos_df = spark.createDataFrame(pos_tbl)
    write_parquet_atomically(pos_df.coalesce(1), dirs["positives"], partition_by=("region_split",))
    pos_written = spark.read.parquet(to_spark_path(dirs["positives"]))
    n_pos_rows = pos_written.count()

    # ---- negatives (the filtered pool)
    obj_cols = [f.name for f in OBJECT_SCHEMA]
    neg = raw.where(F.col("_kind") == "neg").select(*obj_cols)
    write_parquet_atomically(neg.repartition(max(1, cfg.spark.shuffle_partitions), "healpix")
                             .sortWithinPartitions("galaxy_id"), dirs["negatives"], partition_by=("region_split",))
    raw.unpersist()
    pool = spark.read.parquet(to_spark_path(dirs["negatives"]))
    pool_counts = {(r["stratum"], r["pool"]): int(r["count"])
                   for r in pool.groupBy("stratum", "pool").count().collect()}
    n_pool = sum(pool_counts.values())
    pool_shares = shares_from_counts({(r["pool"], r["n2_category"]): int(r["count"])
                                      for r in pool.groupBy("pool", "n2_category").count().collect()})
    if rows_read != n_pool + sum(first_failed.values()):
        raise RuntimeError(f"stage 6: sweep rows read ({rows_read}) != pool ({n_pool}) + rejected "
                           f"({sum(first_failed.values())})")

    # ---- sample: quotas per stratum, rank by 64-bit hash within (stratum, pool)
    matched = pos_written.where((F.col("match_status") == MATCHED) & (F.col("passes_filters") == 1))
    pos_counts = {r["stratum"]: int(r["count"]) for r in matched.groupBy("stratum").count().collect()}
    quotas = stratum_quotas(pos_counts, pool_counts, st.sampling)
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
                             .sortWithinPartitions("galaxy_id"), dirs["sample"], partition_by=("region_split",))
    samp = spark.read.parquet(to_spark_path(dirs["sample"]))
    by_group = samp.groupBy("label", "stratum", "pool").count().collect()
    sel_counts = {(r["stratum"], r["pool"]): int(r["count"]) for r in by_group if int(r["label"]) == 0}
    n_sample_pos = sum(int(r["count"]) for r in by_group if int(r["label"]) == 1)
    n_sample_neg = sum(sel_counts.values())
    n_sample = n_sample_pos + n_sample_neg
    gate = gates(quotas, sel_counts, st.sampling)
    steps.done("positives, pool and sample", positives=n_pos_rows, pool=n_pool, sample=n_sample)

    # ---- cutouts
    cut_counts = _cutouts(spark, cfg, samp, dirs["cutouts"], n_sample)
    steps.done("cutouts", rows=n_sample)

    # ---- validation
    summary = _validate(spark, cfg, dirs["cutouts"], samp)
    summary["counts"] = {"lenses": len(lenses), **match_counts, "positives_rejected": pos_rejected["rejected"],
                         "positives_rejected_first_filter": pos_rejected["rejected_first_filter"], "pool": n_pool,
                         "sample_positives": n_sample_pos, "sample_negatives": n_sample_neg}
    summary["n2_share"] = pool_shares["n2_share"]
    summary["gates"] = gate
    audit_rows = summary["audit"] or [{"feature": "", "n_pos": 0, "n_neg": 0}]
    val_tbl = pa.Table.from_pylist(audit_rows)
    write_parquet_atomically(spark.createDataFrame(val_tbl).coalesce(1), dirs["validation"], partition_by=())
    write_bytes(join(dirs["validation"], "_validation.json"),
                json.dumps(summary, indent=2, sort_keys=True, default=str).encode(), cfg.s3.options())
    write_bytes(join(dirs["validation"], "_report.md"), report_markdown(summary).encode(), cfg.s3.options())

    counts = {
        "sweeps": {"files": len(paths), "unreadable": [{"path": p, "error": e} for p, e in unreadable],
                   "rows_read": rows_read,
                   "per_file": [{k: s[k] for k in ("path", "rows", "error", "rows_read", "pool_rows",
                                                   "candidate_pairs")} for s in summaries]},
        "positives": {"rows_in": len(lenses), "rows_out": n_pos_rows, **match_counts,
                      "candidate_pairs": cand.num_rows, "match_radius_arcsec": st.match_radius_arcsec,
                      "lens_source": lenses.source, "lens_columns": lenses.columns,
                      "positive_filters": list(st.positive_filters), "in_sample": n_pos_ok,
                      "rejected_by_filters": pos_rejected["rejected"],
                      "rejected_first_filter": pos_rejected["rejected_first_filter"],
                      "failed_each_filter": pos_rejected["failed_each_filter"],
                      "rejected_lenses": [{"lens_id": r["key"], "galaxy_id": r["object"], "filters": r["filters"]}
                                          for r in pos_rejected["rows"]]},
        "negatives": {"rows_in": rows_read, "rows_out": n_pool, "rejected": sum(first_failed.values()),
                      "rejected_first_filter": first_failed, "failed_each_filter": failed, "pool": pool_shares},
        "sample": {"rows_in": n_pos_ok + n_pool, "rows_out": n_sample,
                   "positives": n_sample_pos, "negatives": n_sample_neg, "not_selected": n_pool - n_sample_neg,
                   "quotas": quotas, "gates": gate},
        "cutouts": cut_counts,
        "validation": {"rows_in": summary["audit_rows_in"], "stamps_audited": summary["audit_stamps"],
                       "rows_out": len(summary["audit"]),
                       "flags": {r["feature"]: r["flag"] for r in summary["audit"]}},
    }
    failures = {k: v for k, v in cut_counts["failures_by_kind"].items()}
    if unreadable:
        failures["unreadable_sweep"] = len(unreadable)
    result = StageResult(stage=STAGE, output_path=dirs["sample"], rows_in=n_sample, rows_out=cut_counts["rows_out"],
                         failures=failures, extra={"dirs": dirs, "counts": counts})
    result = finish_stage(cfg, result, list(dirs.values()), inputs=paths + [lenses.source, cfg.survey_root],
                          counts=counts, started=started, extra={"dirs": dirs})
    if hn_dir:
        hn = hard_negatives_step(spark, cfg, lenses, dirs, hn_dir)
        result.extra["hard_negatives"] = hn.extra
        result.extra["dirs"] = {**dirs, HARD_KIND: hn_dir}
    return result


# ------------------------------------------------------------------------------------------ cutouts
_STORES: dict[tuple, Any] = {}


def _executor_store(root: str, cache_bytes: int, endpoint: str | None, region: str | None) -> Any:
    key = (root, int(cache_bytes), endpoint, region)
    if key not in _STORES:
        from dhs.survey.coadd import CoaddStore

        _STORES.clear()
        _STORES[key] = CoaddStore(root, cache_bytes=int(cache_bytes), s3_endpoint_url=endpoint, s3_region=region)
    return _STORES[key]


def cutout_arrow_schema(sample_schema: pa.Schema) -> pa.Schema:
    """Sample columns + the cutout columns (:func:`dhs.reallens.cutouts.cutout_columns`)."""
    kinds = {"int": pa.int32(), "float": pa.float64(), "str": pa.string(), "binary": pa.binary()}
    fields = list(sample_schema) + [pa.field(n, kinds[k]) for n, k in cutout_columns()]
    return pa.schema(fields)


def _cutouts(spark: Any, cfg: RunConfig, samp: Any, out_dir: str, rows_in: int) -> dict[str, Any]:
    """Cut every sample row (``rows_in`` of them) into ``out_dir``; returns the counts (rows out must equal
    rows in; failures by kind and by reason)."""
    from pyspark.sql.pandas.types import to_arrow_type

    c = cfg.stage6.cutouts
    root, endpoint, region = cfg.survey_root, cfg.s3.endpoint_url, cfg.s3.region
    in_schema = pa.schema([pa.field(f.name, to_arrow_type(f.dataType)) for f in samp.schema.fields])
    schema = cutout_arrow_schema(in_schema)

    def mapper(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        store = _executor_store(root, c.cache_bytes, endpoint, region) if c.source == "coadd" else None
        client = None if store is not None else CutoutServiceClient(
            c.service_url, c.service_layer, c.service_retries, c.service_timeout_s, c.service_backoff_s)
        for batch in batches:
            rows = batch.to_pylist()
            out = []
            for r in rows:
                r.update(cutout_row(r["ra"], r["dec"], r.get("brickname"), c.size, store=store, client=client,
                                    keep_invvar=c.keep_invvar, keep_maskbits=c.keep_maskbits,
                                    core_radius_pix=c.core_radius_pix, annulus_pix=tuple(c.annulus_pix),
                                    central_box_pix=c.central_box_pix))
                out.append(r)
            yield pa.RecordBatch.from_pylist(out, schema=schema)

    n_part = c.partitions or cfg.spark.shuffle_partitions
    # range partitions: a brick's rows stay together but a crowded brick is split over several tasks
    df = (samp.repartitionByRange(max(1, n_part), "brickname", "galaxy_id").sortWithinPartitions("brickname", "galaxy_id")
          .mapInArrow(mapper, spark_schema(schema)))
    write_parquet_atomically(df, out_dir, partition_by=("region_split",))
    written = spark.read.parquet(to_spark_path(out_dir))
    agg = written.groupBy("cutout_ok", "error").count().collect()
    rows_out = int(sum(r["count"] for r in agg))
    if rows_out != rows_in:
        raise RuntimeError(f"stage 6: cutout rows out ({rows_out}) != rows in ({rows_in})")
    by_kind: dict[str, int] = {}
    by_reason: dict[str, int] = {}
    for r in agg:
        if r["error"] is not None:
            k = r["error"].split(":", 1)[0]
            by_kind[k] = by_kind.get(k, 0) + int(r["count"])
            by_reason[r["error"]] = by_reason.get(r["error"], 0) + int(r["count"])
    n_ok = int(sum(r["count"] for r in agg if r["cutout_ok"] == 1))
    return {"rows_in": rows_in, "rows_out": rows_out, "ok": n_ok, "failed": rows_out - n_ok,
            "failures_by_kind": by_kind, "failures_by_reason": dict(sorted(by_reason.items())),
            "source": c.source, "size": c.size}


# ---------------------------------------------------------------------------------------- validation
def cross_split_pairs(samp: Any, radius_arcsec: float) -> dict[str, Any]:
    """:func:`dhs.reallens.validation.cross_split_neighbours` computed by Spark: positions are keyed by the
    cells of :func:`dhs.reallens.validation.sky_cell_keys`, each row is joined to the rows of its own and
    adjacent cells, and pairs in different splits closer than the radius are counted once."""
    from pyspark.sql import functions as F

    if radius_arcsec <= 0:
        return {"radius_arcsec": radius_arcsec, "pairs": 0}
    fields = [pa.field("galaxy_id", pa.string()), pa.field("region_split", pa.string()),
              pa.field("ra", pa.float64()), pa.field("dec", pa.float64())]
    schema = pa.schema([*fields, pa.field("cell", pa.int64()), pa.field("own", pa.bool_())])

    def cells(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            t = pa.Table.from_batches([b])
            ra = t.column("ra").to_numpy(zero_copy_only=False).astype(np.float64)
            dec = t.column("dec").to_numpy(zero_copy_only=False).astype(np.float64)
            own, row, key = sky_cell_keys(ra, dec, radius_arcsec)
            for idx, cell, is_own in ((np.arange(t.num_rows), own, True), (row, key, False)):
                part = t.take(pa.array(idx))
                yield pa.RecordBatch.from_arrays(
                    [*(part.column(f.name).combine_chunks().cast(f.type) for f in fields),
                     pa.array(cell, pa.int64()), pa.array(np.full(len(idx), is_own))], schema=schema)

    keyed = (samp.select("galaxy_id", "region_split", "ra", "dec").where(F.col("ra").isNotNull() & F.col("dec").isNotNull())
             .mapInArrow(cells, spark_schema(schema)))
    a = keyed.where(~F.col("own")).select(*[F.col(c).alias(f"a_{c}") for c in ("galaxy_id", "region_split", "ra", "dec", "cell")])
    b = keyed.where(F.col("own")).select(*[F.col(c).alias(f"b_{c}") for c in ("galaxy_id", "region_split", "ra", "dec", "cell")])
    rad = F.lit(np.pi / 180.0)
    hav = (F.sin((F.col("b_dec") - F.col("a_dec")) * rad / 2) ** 2
           + F.cos(F.col("a_dec") * rad) * F.cos(F.col("b_dec") * rad) * F.sin((F.col("b_ra") - F.col("a_ra")) * rad / 2) ** 2)
    sep_arcsec = F.degrees(F.asin(F.sqrt(F.least(hav, F.lit(1.0)))) * 2) * 3600.0
    n = (a.join(b, F.col("a_cell") == F.col("b_cell"))
         .where((F.col("a_galaxy_id") < F.col("b_galaxy_id"))
                & ~F.col("a_region_split").eqNullSafe(F.col("b_region_split")) & (sep_arcsec < radius_arcsec))
         .count())
    return {"radius_arcsec": radius_arcsec, "pairs": int(n)}


def _validate(spark: Any, cfg: RunConfig, cut_dir: str, samp: Any) -> dict[str, Any]:
    """Shortcut audit of the good cutouts (positives vs negatives, capped per class), split proportions per
    class, HEALPix disjointness and cross-split neighbours of the sample (module docstring, step 6)."""
    from pyspark.sql import functions as F

    v = cfg.stage6.validation
    cut = spark.read.parquet(to_spark_path(cut_dir))
    feat_cols = [c for c in cut.columns if c.startswith("feat_")] + [
        c for c in cut.columns if c.startswith(("core_flux_", "annulus_median_", "outer_median_"))]
    good = cut.where(F.col("cutout_ok") == 1)
    per_label = {int(r["label"]): int(r["count"]) for r in good.groupBy("label").count().collect()}
    # thin each class in Spark (every stride-th 64-bit hash residue) before the exact cap on the driver
    keep = F.lit(False)
    for lab, n in per_label.items():
        stride = max(1, n // v.max_per_class)
        keep = keep | ((F.col("label") == lab) & (F.pmod(F.col("sample_hash"), F.lit(stride)) == 0))
    rows = good.where(keep).select("galaxy_id", "label", *feat_cols).collect()
    seed = stable_hash64("stage6-validation", int(cfg.seed))
    by_cls: dict[int, dict[str, np.ndarray]] = {}
    for lab in (0, 1):
        rs = [r for r in rows if int(r["label"]) == lab]
        capped = cap_per_class([r["galaxy_id"] for r in rs], v.max_per_class, seed)
        rs = [r for r, k in zip(rs, capped.tolist()) if k]
        by_cls[lab] = {c.removeprefix("feat_"): np.array([np.nan if r[c] is None else r[c] for r in rs],
                                                          dtype=np.float64) for c in feat_cols}
    audit_rows = audit(by_cls[1], by_cls[0], v, seed) if rows else []
    # split shares, pixel disjointness and cross-split pairs are aggregated by Spark: the driver receives
    # counts, never the sample
    per = {(int(r["label"]), str(r["region_split"])): int(r["count"])
           for r in samp.groupBy("label", "region_split").count().collect()}
    fr = cfg.stage6.split_fractions
    splits = {name: split_proportions_from_counts({s: c for (lb, s), c in per.items() if lb == lab}, fr,
                                                  v.split_tolerance) for name, lab in (("positives", 1), ("negatives", 0))}
    pix = samp.groupBy("healpix").agg(F.countDistinct(F.coalesce(F.col("region_split"), F.lit("None"))).alias("k"))
    shared = pix.where(F.col("k") > 1)
    disj = disjointness_summary(pix.count(), shared.count(),
                                [int(r[0]) for r in shared.orderBy("healpix").limit(10).collect()])
    neigh = cross_split_pairs(samp, v.neighbour_radius_arcsec)
    n_used = {name: len(next(iter(by_cls[lab].values()), [])) for name, lab in (("positives", 1), ("negatives", 0))}
    return {"audit": audit_rows, "audit_rows_in": sum(per_label.values()), "audit_stamps": n_used,
            "splits": splits, "disjointness": disj,
            "neighbours": neigh}
