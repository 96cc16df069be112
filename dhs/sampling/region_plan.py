"""Stage 3's driver-side plan, pure numpy: the brick table, brick quality, capped regions, region metrics and
scores, HEALPix-block splits balanced by parent galaxies and the selection sets of every region."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from dhs.config import RunConfig
from dhs.sampling.ranking import ScoreParams, SelectionSpec, region_scores, selection_sets_per_region
from dhs.sampling.regions import QualityCuts, brick_area_deg2, brick_quality, grow_regions, region_metrics
from dhs.sampling.splits import assign_blocks, healpix_block

_BOUNDS = ("ra1", "ra2", "dec1", "dec2")


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
    bounds = {k: np.full(len(names), np.nan) for k in _BOUNDS}
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


def region_splits(metrics: dict[str, np.ndarray], region: np.ndarray, bricks: dict[str, np.ndarray],
                  parent_per_brick: dict[str, int], cfg: RunConfig) -> None:
    """Add ``n_parent``, ``sky_block`` and ``region_split`` to ``metrics``: each region lies in the HEALPix
    block (nside ``stage3.healpix_nside``) of its area-weighted centre; blocks are weighted by parent galaxies
    and assigned by :func:`dhs.sampling.splits.assign_blocks` with the run seed."""
    st = cfg.stage3
    nreg = len(metrics["region_id"])
    n_parent_brick = np.array([parent_per_brick.get(b, 0) for b in bricks["brickname"].tolist()], dtype=np.float64)
    sel = region >= 0
    ridx = np.searchsorted(metrics["region_id"], region[sel])
    n_parent = np.bincount(ridx, weights=n_parent_brick[sel], minlength=nreg).astype(np.int64)
    metrics["n_parent"] = n_parent
    blocks = healpix_block(metrics["ra_center"], metrics["dec_center"], st.healpix_nside) if nreg else np.zeros(0, np.int64)
    metrics["sky_block"] = blocks
    ublocks, binv = np.unique(blocks, return_inverse=True)
    bw = np.bincount(binv, weights=n_parent, minlength=len(ublocks))
    bsplit = assign_blocks(ublocks, bw, st.split_fractions, seed=cfg.seed, nside=st.healpix_nside) if nreg else np.zeros(0, str)
    metrics["region_split"] = bsplit[binv] if nreg else np.zeros(0, dtype=str)


def selection_sets(metrics: dict[str, np.ndarray], cfg: RunConfig) -> list[tuple[str, Any, str]]:
    """Score the regions for the run variant (``score_*`` columns) and build every selection set of
    ``stage3.selection_set_plan``: adds ``selection_sets`` (per region, in plan order) and the ranking scores
    of the other variants (``score_<mode>__<variant>``) to ``metrics``; returns the plan."""
    st = cfg.stage3
    rk = st.ranking
    v = cfg.variant
    rid, split = metrics["region_id"], metrics["region_split"]
    params = ScoreParams(rk.area_alpha, rk.psf_ref_arcsec, rk.psf_scale_arcsec, rk.depth_ref_mag,
                         rk.depth_scale_mag, rk.ebv_coeff)

    def scores_for(variant: str) -> dict[str, np.ndarray]:
        return region_scores(metrics[f"n_lrg_{variant}"], metrics["area_deg2"], metrics["psfsize_r_p50"],
                             metrics["psfdepth_r_mag5_p50"], metrics["ebv_p50"], params)

    scores = scores_for(v)
    metrics.update(scores)
    plan = st.selection_set_plan(v)
    sets: list[list[str]] = [[] for _ in range(len(rid))]
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
    return plan


def region_bricknames(rid: np.ndarray, brickname: np.ndarray, region: np.ndarray) -> list[list[str]]:
    """The sorted bricknames of every region of ``rid``."""
    members: dict[int, list[str]] = {int(r): [] for r in rid.tolist()}
    for b, r in zip(brickname.tolist(), region.tolist()):
        if r >= 0:
            members[int(r)].append(b)
    return [sorted(members[int(r)]) for r in rid.tolist()]


def plan_info(ok: np.ndarray, parts: dict[str, np.ndarray], bricks: dict[str, np.ndarray],
              metrics: dict[str, Any], plan: list[tuple[str, Any, str]]) -> dict[str, Any]:
    """The counts of the plan for ``_stage_config.json``: bricks (passing / failing each quality cut / not in
    the summary), regions, and per selection set its variant, score and number of regions."""
    nreg = len(metrics["region_id"])
    return {
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


def plan_regions(
    cfg: RunConfig, bricks: dict[str, np.ndarray], variant_names: list[str], parent_per_brick: dict[str, int]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Quality, regions, metrics, scores, splits and selection sets (pure numpy).

    Returns ``(regions_table, info)`` and adds ``quality_ok``, ``region_id``, ``region_split`` to
    ``bricks``. Splits: :func:`region_splits`; selection sets: :func:`selection_sets`.
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
    region_splits(metrics, region, bricks, parent_per_brick, cfg)
    plan = selection_sets(metrics, cfg)
    metrics["bricknames"] = region_bricknames(metrics["region_id"], bricks["brickname"], region)
    metrics["score_variant"] = np.full(len(metrics["region_id"]), cfg.variant)
    split_of_region = dict(zip(metrics["region_id"].tolist(), metrics["region_split"].tolist()))
    bricks["region_split"] = np.array([split_of_region.get(int(r), "") for r in region.tolist()], dtype=object)
    return metrics, plan_info(ok, parts, bricks, metrics, plan)


def regions_table(metrics: dict[str, Any]) -> pa.Table:
    """The region metrics as an Arrow table (lists of strings for ``selection_sets`` / ``bricknames``, strings
    for ``region_split`` / ``score_variant``, int64 or float64 for every other column)."""
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
