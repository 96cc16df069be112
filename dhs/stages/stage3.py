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

import io
import json
import math
import os
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from dhs.config import RunConfig
from dhs.io.paths import S3Options, read_bytes
from dhs.logs import StageSteps
from dhs.sampling.lrg import LRGVariant, evaluate_cuts, resolve_variants
from dhs.sampling.ranking import ScoreParams, SelectionSpec, region_scores, selection_sets_per_region
from dhs.sampling.regions import QualityCuts, brick_area_deg2, brick_quality, grow_regions, region_metrics
from dhs.sampling.splits import assign_blocks, healpix_block
from dhs.stages.common import (
    StageResult,
    finish_stage,
    should_skip,
    skipped_result,
    spark_schema,
    stage_output_dir,
    write_parquet_atomically,
)
from dhs.stages.sweep_inputs import resolve_sweep_paths, sweep_read_tasks
from dhs.survey.layout import brick_summary_path
from dhs.survey.photometry import flux_to_mag, psfdepth_ivar_to_mag5

STAGE = "3"
BANDS = ("g", "r", "z", "w1")

#: Sweep columns copied into the parent table (lower-case DR10 names) besides the variants' inputs.
PARENT_SWEEP_COLUMNS: tuple[str, ...] = (
    "brickname", "objid", "ra", "dec", "type",
    "flux_g", "flux_r", "flux_z", "flux_w1",
    "nobs_g", "nobs_r", "nobs_z", "maskbits",
    "psfsize_g", "psfsize_r", "psfsize_z", "psfdepth_g", "psfdepth_r", "psfdepth_z",
    "ebv", "shape_r", "fracmasked_g",
)
_INT_COLS = {"objid": pa.int64(), "nobs_g": pa.int32(), "nobs_r": pa.int32(), "nobs_z": pa.int32(),
             "maskbits": pa.int32()}
_STR_COLS = {"galaxy_id", "brickname", "type", "sweep_file"}


def parent_schema(variants: list[LRGVariant]) -> pa.Schema:
    """Arrow schema of the parent rows produced by :func:`process_sweep` (before region columns).
    Fluxes nanomaggies, magnitudes AB (float64), psfsize arcsec, psfdepth nanomaggy⁻², psfdepth_r_mag5 AB mag."""
    fields = [pa.field("galaxy_id", pa.string())]
    for c in PARENT_SWEEP_COLUMNS:
        if c in _STR_COLS:
            fields.append(pa.field(c, pa.string()))
        else:
            fields.append(pa.field(c, _INT_COLS.get(c, pa.float64())))
    fields += [pa.field(f"mag_{b}", pa.float64()) for b in BANDS]
    fields.append(pa.field("psfdepth_r_mag5", pa.float64()))
    fields += [pa.field(f"is_lrg_{v.name}", pa.bool_()) for v in variants]
    fields.append(pa.field("sweep_file", pa.string()))
    return pa.schema(fields)


# --------------------------------------------------------------------------------------------- inputs
def _read_table_bytes(path: str, data: bytes) -> dict[str, np.ndarray]:
    lower = path.lower()
    if lower.endswith(".parquet"):
        import pyarrow.parquet as pq

        t = pq.read_table(io.BytesIO(data))
        return {c.lower(): t[c].to_numpy(zero_copy_only=False) for c in t.column_names}
    if lower.endswith(".csv"):
        import pyarrow.csv as pcsv

        t = pcsv.read_csv(io.BytesIO(data))
        return {c.lower(): t[c].to_numpy(zero_copy_only=False) for c in t.column_names}
    from astropy.io import fits

    if data[:2] == b"\x1f\x8b":
        import gzip

        data = gzip.decompress(data)
    with fits.open(io.BytesIO(data)) as hdul:
        hdu = next((h for h in hdul if isinstance(h, fits.BinTableHDU)), None)
        if hdu is None:
            raise ValueError(f"brick summary {path}: no binary table HDU")
        out = {}
        for name in hdu.columns.names:
            col = np.asarray(hdu.data[name])
            if col.ndim != 1:
                continue
            if col.dtype.kind == "S":
                col = np.char.strip(np.char.decode(col, "ascii"))
            elif col.dtype.byteorder not in ("=", "|"):
                col = col.astype(col.dtype.newbyteorder("="))
            out[name.lower()] = col
        return out


def load_brick_summary(path: str, unit: str, s3: S3Options | None = None) -> dict[str, np.ndarray]:
    """Per-brick table: ``brickname``, ``ebv`` (mag), ``psfsize_r`` (arcsec), ``psfdepth_r_mag5`` (5σ AB
    mag; from ``psfdepth_r`` in ``unit`` "mag5" or "ivar" nanomaggy⁻²) and, when present, ``ra1, ra2,
    dec1, dec2`` (deg). FITS (.fits/.fits.gz), Parquet or CSV. Errors name the file and column."""
    try:
        data = read_bytes(path, s3)
    except (OSError, Exception) as exc:
        raise FileNotFoundError(f"stage 3: cannot read brick summary {path} (stage3.brick_summary): {exc}") from exc
    cols = _read_table_bytes(path, data)
    for need in ("brickname", "ebv", "psfsize_r", "psfdepth_r"):
        if need not in cols:
            raise KeyError(f"brick summary {path}: column {need!r} missing (have {sorted(cols)[:30]})")
    depth = np.asarray(cols["psfdepth_r"], dtype=np.float64)
    out = {
        "brickname": np.asarray(cols["brickname"]).astype(str),
        "ebv": np.asarray(cols["ebv"], dtype=np.float64),
        "psfsize_r": np.asarray(cols["psfsize_r"], dtype=np.float64),
        "psfdepth_r_mag5": depth if unit == "mag5" else psfdepth_ivar_to_mag5(depth),
    }
    if all(k in cols for k in ("ra1", "ra2", "dec1", "dec2")):
        for k in ("ra1", "ra2", "dec1", "dec2"):
            out[k] = np.asarray(cols[k], dtype=np.float64)
    elif "ra" in cols and "dec" in cols and len(out["brickname"]):
        # bounds from the brick tiling at the listed centres (vectorised); names must agree
        from dhs.survey.bricks import bricks_at

        geo = bricks_at(np.asarray(cols["ra"], dtype=np.float64), np.asarray(cols["dec"], dtype=np.float64))
        bad = np.flatnonzero(geo["brickname"] != out["brickname"])
        if len(bad):
            raise ValueError(
                f"brick summary {path}: row {int(bad[0])} brickname {str(out['brickname'][bad[0]])!r} does not match the "
                f"brick at its ra/dec ({str(geo['brickname'][bad[0]])!r})"
            )
        for k in ("ra1", "ra2", "dec1", "dec2"):
            out[k] = geo[k]
    if len(np.unique(out["brickname"])) != len(out["brickname"]):
        raise ValueError(f"brick summary {path}: duplicate bricknames")
    return out


# ------------------------------------------------------------------------------------- per-file task
def _to_numpy(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return col.to_numpy(zero_copy_only=False)


def process_sweep(
    path: str,
    variants: list[LRGVariant],
    parent_rule: str,
    run_variant: str,
    s3: S3Options | None = None,
    rows: tuple[int, int] | None = None,
) -> tuple[pa.Table | None, dict[str, Any]]:
    """Read one sweep file (or a row range of it) and select parent rows.

    Returns ``(parent_table or None, summary)``; ``summary`` holds ``path``, ``rows`` (range or None),
    ``error`` (None or the reason), ``rows_read``, ``rows_kept``, ``failed_cut`` {variant: {cut: n}},
    ``passed`` {variant: n} and ``bricks`` {brickname: [n_gal, n_lrg per variant…]} (n_gal = non-PSF rows).
    A file that cannot be read gives ``(None, summary with error)`` rather than raising.
    """
    from dhs.survey.sweeps import read_sweep

    summary: dict[str, Any] = {"path": path, "rows": list(rows) if rows else None, "error": None,
                               "rows_read": 0, "rows_kept": 0, "failed_cut": {}, "passed": {}, "bricks": {}}
    needed = list(dict.fromkeys(list(PARENT_SWEEP_COLUMNS) + [c for v in variants for c in v.columns()]))
    try:
        kwargs: dict[str, Any] = {"columns": needed, "s3": s3}
        if rows is not None:
            kwargs["rows"] = rows
        t = read_sweep(path, **kwargs)
    except Exception as exc:  # noqa: BLE001 - reported by name in _stage_config.json
        summary["error"] = f"{type(exc).__name__}: {exc}"
        return None, summary
    n = t.num_rows
    summary["rows_read"] = n
    cols = {c: _to_numpy(t[c]) for c in t.column_names}
    flags, fails = evaluate_cuts(cols, variants)
    summary["failed_cut"] = fails
    summary["passed"] = {v.name: int(flags[f"is_lrg_{v.name}"].sum()) for v in variants}
    types = np.char.upper(np.char.strip(np.asarray(cols["type"]).astype(str)))
    bricknames = np.asarray(cols["brickname"]).astype(str)
    uniq, inv = np.unique(bricknames, return_inverse=True)
    per = [np.bincount(inv, weights=(types != "PSF"), minlength=len(uniq))]
    per += [np.bincount(inv, weights=flags[f"is_lrg_{v.name}"], minlength=len(uniq)) for v in variants]
    stacked = np.rint(np.vstack(per)).astype(np.int64)
    summary["bricks"] = {str(b): stacked[:, k].tolist() for k, b in enumerate(uniq.tolist())}
    if parent_rule == "variant":
        keep = flags[f"is_lrg_{run_variant}"]
    else:
        keep = np.zeros(n, dtype=bool)
        for f in flags.values():
            keep |= f
    summary["rows_kept"] = int(keep.sum())
    schema = parent_schema(variants)
    out: dict[str, Any] = {}
    objid = np.asarray(cols["objid"]).astype(np.int64)[keep]
    out["galaxy_id"] = np.char.add(np.char.add(bricknames[keep], "_"), objid.astype(str))
    for c in PARENT_SWEEP_COLUMNS:
        v = cols[c][keep]
        out[c] = v.astype(str) if c in _STR_COLS else v
    out["type"] = types[keep]
    for b in BANDS:
        out[f"mag_{b}"] = flux_to_mag(np.asarray(cols[f"flux_{b}"], dtype=np.float64)[keep])
    out["psfdepth_r_mag5"] = psfdepth_ivar_to_mag5(np.asarray(cols["psfdepth_r"], dtype=np.float64)[keep])
    for v in variants:
        out[f"is_lrg_{v.name}"] = flags[f"is_lrg_{v.name}"][keep]
    out["sweep_file"] = np.full(int(keep.sum()), os.path.basename(path))
    arrays = []
    for f in schema:
        vals = out[f.name]
        if pa.types.is_floating(f.type):
            vals = np.asarray(vals, dtype=np.float64)  # float32 catalogue values widen exactly
        arrays.append(pa.array(vals, type=f.type))
    return pa.Table.from_arrays(arrays, schema=schema), summary


# ---------------------------------------------------------------------------------- driver (no Spark)
def build_brick_table(
    brick_counts: dict[str, list[int]],
    variant_names: list[str],
    summary: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Per-brick table of the bricks seen in the catalogue: counts from the sweeps, quality values from
    the summary (NaN when the brick is absent there), bounds from the summary or the brick tiling."""
    from dhs.survey.bricks import brick_by_name

    names = np.array(sorted(brick_counts), dtype=str)
    counts = np.array([brick_counts[b] for b in names], dtype=np.int64).reshape(len(names), 1 + len(variant_names))
    pos = {b: i for i, b in enumerate(summary["brickname"].tolist())}
    idx = np.array([pos.get(b, -1) for b in names.tolist()], dtype=np.int64)
    have = idx >= 0
    table: dict[str, np.ndarray] = {"brickname": names, "in_summary": have, "n_gal": counts[:, 0]}
    for k, v in enumerate(variant_names):
        table[f"n_lrg_{v}"] = counts[:, 1 + k]
    for c in ("ebv", "psfsize_r", "psfdepth_r_mag5"):
        vals = np.full(len(names), np.nan)
        vals[have] = summary[c][idx[have]]
        table[c] = vals
    bounds = {k: np.full(len(names), np.nan) for k in ("ra1", "ra2", "dec1", "dec2")}
    for i, b in enumerate(names.tolist()):
        if have[i] and "ra1" in summary:
            for k, arr in bounds.items():
                arr[i] = summary[k][idx[i]]
        else:
            br = brick_by_name(b)
            bounds["ra1"][i], bounds["ra2"][i], bounds["dec1"][i], bounds["dec2"][i] = br.ra1, br.ra2, br.dec1, br.dec2
    table.update(bounds)
    table["area_deg2"] = brick_area_deg2(bounds["ra1"], bounds["ra2"], bounds["dec1"], bounds["dec2"])
    return table


def plan_regions(
    cfg: RunConfig, bricks: dict[str, np.ndarray], variant_names: list[str], parent_per_brick: dict[str, int]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Quality, regions, metrics, scores, splits and selection sets (pure numpy).

    Returns ``(regions_table, info)`` and adds ``quality_ok``, ``region_id``, ``region_split`` to
    ``bricks``. Splits: each region lies in the HEALPix block (nside ``stage3.healpix_nside``) of its
    area-weighted centre; blocks are weighted by parent galaxies and assigned by
    :func:`dhs.sampling.splits.assign_blocks` with the run seed.
    """
    st = cfg.stage3
    q = st.quality
    ok, parts = brick_quality(bricks["ebv"], bricks["psfsize_r"], bricks["psfdepth_r_mag5"], bricks["n_gal"],
                              QualityCuts(q.ebv_max, q.psfsize_r_max, q.psfdepth_r_mag5_min, q.min_n_gal))
    bricks["quality_ok"] = ok
    region = grow_regions(bricks["ra1"], bricks["ra2"], bricks["dec1"], bricks["dec2"], ok,
                          max_bricks=st.region_max_bricks, max_area_deg2=st.region_max_area_deg2,
                          keys=bricks["brickname"])
    bricks["region_id"] = region
    metrics = region_metrics(region, bricks, {v: bricks[f"n_lrg_{v}"] for v in variant_names})
    rid = metrics["region_id"]
    nreg = len(rid)
    n_parent_brick = np.array([parent_per_brick.get(b, 0) for b in bricks["brickname"].tolist()], dtype=np.float64)
    sel = region >= 0
    ridx = np.searchsorted(rid, region[sel])
    n_parent = np.bincount(ridx, weights=n_parent_brick[sel], minlength=nreg).astype(np.int64)
    metrics["n_parent"] = n_parent
    blocks = healpix_block(metrics["ra_center"], metrics["dec_center"], st.healpix_nside) if nreg else np.zeros(0, np.int64)
    metrics["sky_block"] = blocks
    ublocks, binv = np.unique(blocks, return_inverse=True)
    bw = np.bincount(binv, weights=n_parent, minlength=len(ublocks))
    bsplit = assign_blocks(ublocks, bw, st.split_fractions, seed=cfg.seed, nside=st.healpix_nside) if nreg else np.zeros(0, str)
    split = bsplit[binv] if nreg else np.zeros(0, dtype=str)
    metrics["region_split"] = split
    rk = st.ranking
    v = cfg.variant
    params = ScoreParams(rk.area_alpha, rk.psf_ref_arcsec, rk.psf_scale_arcsec, rk.depth_ref_mag,
                         rk.depth_scale_mag, rk.ebv_coeff)

    def scores_for(variant: str) -> dict[str, np.ndarray]:
        return region_scores(metrics[f"n_lrg_{variant}"], metrics["area_deg2"], metrics["psfsize_r_p50"],
                             metrics["psfdepth_r_mag5_p50"], metrics["ebv_p50"], params)

    scores = scores_for(v)
    metrics.update(scores)
    plan = st.selection_set_plan(v)
    sets: list[list[str]] = [[] for _ in range(nreg)]
    for variant in dict.fromkeys(p[2] for p in plan):
        vs = scores if variant == v else scores_for(variant)
        if variant != v:   # every set's ranking scores are kept: score_<mode>__<variant>
            metrics.update({f"{k}__{variant}": x for k, x in vs.items() if k.startswith("score_")})
        specs = [SelectionSpec(kind=c.kind, score=c.score, k=c.k, n=c.n, n_bins=c.n_bins, weights=tuple(c.weights),
                               id=sid) for sid, c, pv in plan if pv == variant]
        for i, member in enumerate(selection_sets_per_region(
                rid, split, {n[6:]: vs[n] for n in vs if n.startswith("score_")}, specs, seed=cfg.seed)):
            sets[i].extend(member)
    order = {sid: j for j, (sid, _, _) in enumerate(plan)}
    metrics["selection_sets"] = [sorted(x, key=order.__getitem__) for x in sets]  # list of lists (one per region)
    members: dict[int, list[str]] = {int(r): [] for r in rid.tolist()}
    for b, r in zip(bricks["brickname"].tolist(), region.tolist()):
        if r >= 0:
            members[int(r)].append(b)
    metrics["bricknames"] = [sorted(members[int(r)]) for r in rid.tolist()]
    metrics["score_variant"] = np.full(nreg, v)
    split_of_region = dict(zip(rid.tolist(), split.tolist()))
    bricks["region_split"] = np.array([split_of_region.get(int(r), "") for r in region.tolist()], dtype=object)
    info = {
        "bricks": len(ok),
        "bricks_quality_ok": int(ok.sum()),
        "bricks_failed_quality": {k: int((~p).sum()) for k, p in parts.items()},
        "bricks_not_in_summary": int((~bricks["in_summary"]).sum()),
        "regions": int(nreg),
        "region_max_bricks_seen": int(metrics["n_bricks"].max()) if nreg else 0,
        "selection_set_ids": [sid for sid, _, _ in plan],
        "selection_set_variant": {sid: pv for sid, _, pv in plan},
        "selection_set_score": {sid: c.score for sid, c, _ in plan},
        "regions_per_selection_set": {sid: int(sum(sid in x for x in metrics["selection_sets"])) for sid, _, _ in plan},
    }
    return metrics, info


def host_sets_expr(set_variant: dict[str, str]) -> Any:
    """Spark column ``host_selection_sets``: the sets of the row's region whose LRG variant the row passes
    (``is_lrg_<variant>``), i.e. the selection sets this galaxy is a host of (in set order)."""
    from pyspark.sql import functions as F

    if not set_variant:
        return F.array().cast("array<string>")
    picks = [F.when(F.array_contains("selection_sets", sid) & F.coalesce(F.col(f"is_lrg_{v}"), F.lit(False)),
                    F.lit(sid)) for sid, v in set_variant.items()]
    return F.filter(F.array(*picks), lambda x: x.isNotNull())


def _regions_arrow(metrics: dict[str, np.ndarray]) -> pa.Table:
    arrays, names = [], []
    for k, v in metrics.items():
        if k in ("selection_sets", "bricknames"):
            arrays.append(pa.array([list(x) for x in v], type=pa.list_(pa.string())))
        elif k in ("region_split", "score_variant"):
            arrays.append(pa.array(np.asarray(v).astype(str).tolist(), type=pa.string()))
        elif np.asarray(v).dtype.kind in "iu":
            arrays.append(pa.array(np.asarray(v, dtype=np.int64)))
        else:
            arrays.append(pa.array(np.asarray(v, dtype=np.float64)))
        names.append(k)
    return pa.Table.from_arrays(arrays, names=names)


# --------------------------------------------------------------------------------------------- Spark
def run(spark: Any, cfg: RunConfig) -> StageResult:
    """Run stage 3 (see module docstring). Skips when both outputs exist and ``force`` is false."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    started = time.time()
    parent_dir = stage_output_dir(cfg, STAGE, "parent")
    regions_dir = stage_output_dir(cfg, STAGE, "regions")
    if should_skip(cfg, [parent_dir, regions_dir]):
        return skipped_result(STAGE, parent_dir)
    st = cfg.stage3
    s3 = cfg.s3.options()
    steps = StageSteps(STAGE, spark)
    variants = resolve_variants(st.variants, st.custom_variants)
    names = [v.name for v in variants]
    if cfg.variant not in names:
        raise ValueError(f"variant {cfg.variant!r} is not in stage3.variants {names}")
    paths = resolve_sweep_paths(cfg)
    summary_path = st.brick_summary or brick_summary_path(cfg.survey_root)
    brick_summary = load_brick_summary(summary_path, st.brick_psfdepth_unit, s3)
    steps.done("inputs", sweep_files=len(paths), bricks_in_summary=len(brick_summary["brickname"]))

    schema = parent_schema(variants).append(pa.field("_summary", pa.string()))
    parent_rule, run_variant = st.parent_rule, cfg.variant

    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for path, a, b in zip(*(batch.column(i).to_pylist() for i in range(3))):
                rows = None if a < 0 else (a, b)
                table, summ = process_sweep(path, variants, parent_rule, run_variant, s3, rows)
                if table is not None and table.num_rows:
                    table = table.append_column("_summary", pa.nulls(table.num_rows, pa.string()))
                    yield from table.to_batches(max_chunksize=4096)
                srow = {f.name: pa.nulls(1, f.type) for f in schema}
                srow["_summary"] = pa.array([json.dumps(summ, sort_keys=True)], pa.string())
                yield pa.RecordBatch.from_arrays([srow[f.name] for f in schema], schema=schema)

    tasks = sweep_read_tasks(cfg, paths)
    task_schema = T.StructType([T.StructField("path", T.StringType()), T.StructField("start", T.LongType()),
                                T.StructField("stop", T.LongType())])
    tasks_df = spark.createDataFrame(spark.sparkContext.parallelize(tasks, max(1, len(tasks))), task_schema)
    raw = tasks_df.mapInArrow(task, spark_schema(schema)).persist()
    summaries = [json.loads(r[0]) for r in raw.where(F.col("_summary").isNotNull()).select("_summary").collect()]
    summaries.sort(key=lambda s: (s["path"], s["rows"] or [-1]))
    steps.done("read sweeps", read_tasks=len(tasks), rows_read=sum(s["rows_read"] for s in summaries),
               unreadable=sum(1 for s in summaries if s["error"]))
    unreadable = sorted({s["path"]: s["error"] for s in summaries if s["error"]}.items())
    if unreadable and not st.allow_missing_sweeps:
        raw.unpersist()
        listing = "; ".join(f"{p}: {e}" for p, e in unreadable)
        raise RuntimeError(
            f"stage 3: {len(unreadable)} sweep file(s) could not be read (set stage3.allow_missing_sweeps: true "
            f"to skip them): {listing}"
        )

    brick_counts: dict[str, list[int]] = {}
    for s in summaries:
        for b, c in s["bricks"].items():
            acc = brick_counts.setdefault(b, [0] * len(c))
            for i, x in enumerate(c):
                acc[i] += x
    parents = raw.where(F.col("_summary").isNull()).drop("_summary")
    per_brick = {r[0]: int(r[1]) for r in parents.groupBy("brickname").count().collect()}
    bricks = build_brick_table(brick_counts, names, brick_summary)
    metrics, info = plan_regions(cfg, bricks, names, per_brick)
    steps.done("regions", bricks=len(bricks["brickname"]), regions=len(metrics["region_id"]))

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
    n_parts = st.output_partitions or max(1, min(cfg.spark.shuffle_partitions, math.ceil(sum(per_brick.values()) / 500_000)))
    parent_out = parent_out.repartition(n_parts, "galaxy_id").sortWithinPartitions("galaxy_id")
    write_parquet_atomically(parent_out, parent_dir, partition_by=("region_split",))
    raw.unpersist()
    steps.done("write parent", parent_rows_before_brick_cut=sum(per_brick.values()))

    regions_tbl = _regions_arrow(metrics)
    regions_schema = spark_schema(regions_tbl.schema)
    regions_df = spark.createDataFrame([tuple(r.values()) for r in regions_tbl.to_pylist()], regions_schema)
    write_parquet_atomically(regions_df.coalesce(1).sortWithinPartitions("region_id"), regions_dir,
                             partition_by=("region_split",))

    written = spark.read.parquet(_spark_path(parent_dir))
    per_split = {r[0]: int(r[1]) for r in written.groupBy("region_split").count().collect()}
    reg_split = {}
    for s in metrics["region_split"].tolist():
        reg_split[s] = reg_split.get(s, 0) + 1
    rows_read = sum(s["rows_read"] for s in summaries)
    rows_kept = sum(s["rows_kept"] for s in summaries)
    rows_out = sum(per_split.values())
    failed_cut: dict[str, dict[str, int]] = {}
    for s in summaries:
        for v, cuts in s["failed_cut"].items():
            dst = failed_cut.setdefault(v, {})
            for c, n in cuts.items():
                dst[c] = dst.get(c, 0) + n
    passed = {v: sum(s["passed"].get(v, 0) for s in summaries) for v in names}
    counts = {
        "sweep_files": len(paths),
        "sweep_files_unreadable": len(unreadable),
        "unreadable_sweeps": [{"path": p, "error": e} for p, e in unreadable],
        "rows_read": rows_read,
        "parent_rule": st.parent_rule,
        "rows_kept": rows_kept,
        "rows_dropped_bad_brick": rows_kept - rows_out,
        "parent_rows": rows_out,
        "passed_per_variant": passed,
        "failed_per_cut": failed_cut,
        "parent_per_split": per_split,
        "regions_per_split": reg_split,
        "per_file": [{k: s[k] for k in ("path", "rows", "error", "rows_read", "rows_kept", "failed_cut", "passed")}
                     for s in summaries],
        **info,
    }
    failures = {"unreadable_sweep": len(unreadable)} if unreadable else {}
    if rows_kept - rows_out:
        failures["parent_in_failed_brick"] = rows_kept - rows_out
    result = StageResult(stage=STAGE, output_path=parent_dir, rows_in=rows_read, rows_out=rows_out,
                         failures=failures, extra={"regions_path": regions_dir, "counts": counts})
    return finish_stage(cfg, result, [parent_dir, regions_dir], inputs=paths + [summary_path], counts=counts,
                        started=started, extra={"brick_summary": summary_path})


def _spark_path(path: str) -> str:
    from dhs.io.paths import to_spark_path

    return to_spark_path(path)
