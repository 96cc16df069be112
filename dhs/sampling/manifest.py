"""The stage 4a injection manifest, built from a host table without Spark.

Given the parent rows that may host an injection (one row per galaxy, DESIGN §5 parent columns) and the
stage 4a settings, :func:`build_manifest` returns one row per task (injection or control) with the DESIGN §5
manifest columns plus the extras listed in INTERFACES.md ("Manifest").

Procedure (every choice ordered by xxhash64, never by input order or partitioning):

1. Hosts without a usable r-band PSF size, depth or magnitude, or near a known lens, are dropped and
   counted by reason (:func:`drop_reasons`).
2. PSF bins (quantiles of ``psfsize_r``) and depth bins (quantiles of the 5σ ``psfdepth_r`` magnitude) over
   the eligible hosts of all splits (:func:`bin_edges`, :func:`add_bins`); a cell is
   (region_split, psf_bin, depth_bin).
3. :func:`plan_cells` decides, from the number of hosts per cell only, how many hosts of each cell receive
   injections and how many control rows it gets. Tiers ``debug``/``grid``: ``n_hosts_per_cell`` hosts,
   each with every grid config × ``replicates``. Tier ``train``: each injection host gets ``replicates``
   rows with one config each (round-robin over the hash order, so configs are balanced within a cell) or
   one prior draw; enough hosts are kept aside to be controls (one row each). Control rows per cell come
   from cumulative rounding of injections × f/(1−f) over the cells of a split, so a split's control
   fraction is within half a row of the target. The ``max_rows`` guardrail fires here, before any row.
4. :func:`build_cell` builds one cell from its hosts alone: hosts ordered by xxhash64(galaxy_id, seed);
   the first ones are injection hosts, the rest the control pool. An unpaired control is a pool host
   (reused only if the pool is too small), matched to an injection row of the same cell (``control_of``);
   a paired control is the injection's own host without the lens.
5. ``task_id`` = ``<experiment_id>/<galaxy_id>/<config_id>/r<replicate>`` for injections (with
   ``<selection_set_id>/`` after the experiment id when the manifest is built per selection set) and
   ``<task_id of its positive>/ctl<j>`` for controls; ``task_seed`` = xxhash64(task_id, seed=run seed) as a
   signed int64. Continuous parameters come from :func:`dhs.sampling.priors.draw_priors` on the task seeds;
   with brightness targeting, ``target_snr`` is stratified over the cell's positive rows, so each cell
   meets the target mix to within one row per bin (plus the null rows taken out of it).
6. Null injections (audit): ``stage4a.null_fraction`` of each split's positive rows (cumulative rounding over
   its cells; in a cell the rows with the smallest xxhash64 of ``<task_id>|null``) become
   ``lens_model = "NULL"`` rows: every parameter drawn as for an injection, source flux 0 (``src_mag_r`` and
   ``src_dmag`` = +inf, no brightness target). They are matched to controls first, so each has a matched
   control whenever its cell has as many controls as null rows. Stage 4d never counts them in completeness;
   it compares them with their matched controls (the null-injection audit).

:func:`build_manifest` runs all steps in one process; stage 4a runs them with Spark (cells in parallel).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dhs.sampling.controls import controls_per_cell, cumulative_round, match_controls, reserved_control_hosts
from dhs.sampling.grids import Grid
from dhs.sampling.hashing import hash64_array, stable_hash64
from dhs.sampling.priors import (
    Priors,
    draw_priors,
    moffat_fwhm_r,
    parse_priors,
    polar_components,
    source_offset,
)
from dhs.sampling.stratify import assign_bins, quantile_edges
from dhs.survey.photometry import psfdepth_ivar_to_mag5

if TYPE_CHECKING:  # the settings object is a dhs.config.stage4a.Stage4aConfig
    from dhs.config.stage4a import Stage4aConfig

REQUIRED_HOST_COLUMNS: tuple[str, ...] = (
    "galaxy_id", "brickname", "ra", "dec", "region_split", "psfsize_r", "psfdepth_r", "mag_r")
"""Parent columns a host table must have."""

OPTIONAL_HOST_COLUMNS: dict[str, pa.DataType] = {
    "region_id": pa.int64(), "type": pa.string(), "psfsize_g": pa.float64(), "psfsize_z": pa.float64(),
    "psfdepth_g": pa.float64(), "psfdepth_z": pa.float64(), "ebv": pa.float64(),
    "selection_sets": pa.list_(pa.string()), "selection_set_id": pa.string(),
}
"""Parent columns copied into the manifest when present (null columns of this type otherwise).
``selection_set_id`` is not a parent column: stage 4a adds it (one row per host and selection set)."""

CONTROL_CONFIG_ID = "control"
PRIOR_CONFIG_ID = "prior"
ALL_HOSTS_SET = "all"
"""``selection_set_id`` of rows built from every host (no region selection set)."""
NULL_LENS_MODEL = "NULL"
"""``lens_model`` of a null injection: the injection path with zero source flux (audit rows)."""

# Computed (non-host) manifest columns and their types.
TASK_FIELDS: dict[str, pa.DataType] = {
    "task_id": pa.string(), "task_seed": pa.int64(), "experiment_id": pa.string(), "tier": pa.string(),
    "is_control": pa.int32(), "control_of": pa.string(), "config_id": pa.string(), "grid_name": pa.string(),
    "replicate": pa.int32(), "lens_model": pa.string(), "theta_e_arcsec": pa.float64(),
    "lens_e1": pa.float64(), "lens_e2": pa.float64(), "lens_pa_rad": pa.float64(),
    "gamma1": pa.float64(), "gamma2": pa.float64(),
    "src_x_arcsec": pa.float64(), "src_y_arcsec": pa.float64(), "src_reff_arcsec": pa.float64(),
    "src_n_sersic": pa.float64(), "src_e1": pa.float64(), "src_e2": pa.float64(),
    "src_dmag": pa.float64(), "src_mag_r": pa.float64(), "src_mag_g": pa.float64(), "src_mag_z": pa.float64(),
    "src_gr": pa.float64(), "src_rz": pa.float64(), "target_snr": pa.float64(), "target_snr_metric": pa.string(),
    "source_mode": pa.string(), "cosmos_index": pa.int64(), "src_hlr_target_arcsec": pa.float64(),
    "psf_bin": pa.int32(), "depth_bin": pa.int32(), "stamp_size": pa.int32(),
    "psfdepth_r_mag5": pa.float64(), "psf_fwhm_r_arcsec": pa.float64(), "theta_e_over_psf": pa.float64(),
}

COLUMN_ORDER: tuple[str, ...] = (
    "task_id", "task_seed", "experiment_id", "galaxy_id", "brickname", "ra", "dec", "region_split",
    "is_control", "control_of", "config_id", "lens_model", "theta_e_arcsec", "lens_e1", "lens_e2",
    "gamma1", "gamma2", "src_x_arcsec", "src_y_arcsec", "src_reff_arcsec", "src_n_sersic", "src_e1", "src_e2",
    "src_dmag", "src_mag_r", "src_gr", "src_rz", "source_mode", "cosmos_index", "psf_bin", "depth_bin",
    "stamp_size",
    # extras (INTERFACES.md "Manifest")
    "psfsize_g", "psfsize_r", "psfsize_z", "psfdepth_g", "psfdepth_r", "psfdepth_z", "psfdepth_r_mag5",
    "ebv", "mag_r", "type", "selection_sets", "tier", "replicate", "target_snr", "target_snr_metric", "src_mag_g",
    "src_mag_z", "lens_pa_rad", "src_hlr_target_arcsec",
    # further extras
    "region_id", "grid_name", "psf_fwhm_r_arcsec", "theta_e_over_psf", "selection_set_id",
)
"""Manifest columns in output order: DESIGN §5, then the INTERFACES extras, then ours."""


class ManifestError(ValueError):
    """The host table or settings cannot give a manifest; the message names the column or key."""


class ManifestTooLarge(ManifestError):
    """The manifest would exceed ``stage4a.max_rows``."""


@dataclass(frozen=True)
class CellPlan:
    """What one stratification cell (split, PSF bin, depth bin) contributes to the manifest."""

    split: str
    psf_bin: int
    depth_bin: int
    n_hosts: int        # eligible hosts in the cell
    n_pos_hosts: int    # hosts that receive injections (the first ones in xxhash order)
    n_pos_rows: int     # injection rows
    n_controls: int     # control rows asked for (fewer are made if an unpaired cell has no spare host)
    n_null: int = 0     # positive rows made null injections (lens_model "NULL", zero source flux)
    selection_set_id: str = ALL_HOSTS_SET

    @property
    def label(self) -> str:
        return cell_label(self.split, self.psf_bin, self.depth_bin, self.selection_set_id)


def cell_label(split: str, psf_bin: int, depth_bin: int, selection_set_id: str | None = None) -> str:
    """``<split>|p<psf_bin>|d<depth_bin>`` (``|s<selection_set_id>`` appended for a selection set other than
    ``all``): the key of a stratification cell."""
    base = f"{split}|p{int(psf_bin)}|d{int(depth_bin)}"
    if selection_set_id is None or selection_set_id == ALL_HOSTS_SET:
        return base
    return f"{base}|s{selection_set_id}"


@dataclass
class ManifestResult:
    """The manifest table plus what goes into ``_stage_config.json``."""

    table: pa.Table
    counts: dict[str, Any]
    bin_edges: dict[str, list[float]]
    dropped: dict[str, int] = field(default_factory=dict)
    cells: list[CellPlan] = field(default_factory=list)


def _column(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False)


def prepare_hosts(hosts: pa.Table) -> pa.Table:
    """Check the required host columns, add missing optional ones as typed nulls, cast numbers to float64.

    Raises :class:`ManifestError` naming a missing or non-numeric column.
    """
    missing = [c for c in REQUIRED_HOST_COLUMNS if c not in hosts.column_names]
    if missing:
        raise ManifestError(f"host table: missing column(s) {missing}; have {hosts.column_names}")
    cols = {c: hosts.column(c) for c in REQUIRED_HOST_COLUMNS}
    for c, typ in OPTIONAL_HOST_COLUMNS.items():
        cols[c] = hosts.column(c) if c in hosts.column_names else pa.nulls(hosts.num_rows, typ)
    for c in ("ra", "dec", "psfsize_r", "psfdepth_r", "mag_r"):
        try:
            cols[c] = pc.cast(cols[c], pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ManifestError(f"host table: column {c!r} must be numeric (got {cols[c].type})") from exc
    if "selection_set_id" not in hosts.column_names:
        cols["selection_set_id"] = pa.array([ALL_HOSTS_SET] * hosts.num_rows, pa.string())
    for c in ("galaxy_id", "region_split", "brickname", "type", "selection_set_id"):
        if not pa.types.is_string(cols[c].type):
            cols[c] = pc.cast(cols[c], pa.string())
    if pa.types.is_large_list(cols["selection_sets"].type) or pa.types.is_list(cols["selection_sets"].type):
        cols["selection_sets"] = pc.cast(cols["selection_sets"], pa.list_(pa.string()))
    return pa.table(cols)


def drop_reasons(t: pa.Table, exclude: np.ndarray | None = None) -> np.ndarray:
    """Per host: None when it may host a task, else the (first) reason it cannot.

    Reasons: bad_position, bad_psfsize_r (≤ 0 or NaN), bad_psfdepth_r, bad_mag_r, bad_region_split,
    near_known_lens (``exclude`` True).
    """
    checks = [
        ("bad_position", ~(np.isfinite(_column(t, "ra")) & np.isfinite(_column(t, "dec")))),
        ("bad_psfsize_r", ~(np.nan_to_num(_column(t, "psfsize_r"), nan=-1.0) > 0)),
        ("bad_psfdepth_r", ~(np.nan_to_num(_column(t, "psfdepth_r"), nan=-1.0) > 0)),
        ("bad_mag_r", ~np.isfinite(_column(t, "mag_r"))),
        ("bad_region_split", pc.is_null(t.column("region_split")).to_numpy(zero_copy_only=False)),
    ]
    if exclude is not None:
        checks.append(("near_known_lens", np.asarray(exclude, dtype=bool)))
    out = np.full(t.num_rows, None, dtype=object)
    for reason, bad in reversed(checks):
        out[bad] = reason
    return out


def depth_mag5(psfdepth_r: np.ndarray) -> np.ndarray:
    """r-band 5σ point-source depth (AB mag) from PSFDEPTH_R (nanomaggy⁻²)."""
    return np.asarray(psfdepth_ivar_to_mag5(np.asarray(psfdepth_r, dtype=np.float64)), dtype=np.float64)


def bin_edges(psfsize_r: np.ndarray, psfdepth_r: np.ndarray, settings: Stage4aConfig) -> dict[str, list[float]]:
    """Quantile edges of the eligible hosts: ``psfsize_r_arcsec`` and ``psfdepth_r_mag5``."""
    if len(psfsize_r) == 0:
        raise ManifestError("no eligible hosts: cannot compute PSF and depth bins")
    return {"psfsize_r_arcsec": quantile_edges(psfsize_r, settings.psf_bins).tolist(),
            "psfdepth_r_mag5": quantile_edges(depth_mag5(psfdepth_r), settings.depth_bins).tolist()}


def add_bins(t: pa.Table, edges: dict[str, list[float]]) -> pa.Table:
    """``t`` with ``psf_bin``, ``depth_bin`` (int32) and ``psfdepth_r_mag5`` (mag) columns."""
    mag5 = depth_mag5(_column(t, "psfdepth_r"))
    t = t.append_column("psf_bin", pa.array(assign_bins(_column(t, "psfsize_r"), np.array(edges["psfsize_r_arcsec"]))))
    t = t.append_column("depth_bin", pa.array(assign_bins(mag5, np.array(edges["psfdepth_r_mag5"]))))
    return t.append_column("psfdepth_r_mag5", pa.array(mag5))


def n_configs(settings: Stage4aConfig, grid: Grid | None) -> int:
    """Configs per host in debug/grid tiers: the grid size, or 1 for prior draws."""
    if settings.parameter_source == "grid":
        if grid is None:
            raise ManifestError("stage4a.parameter_source is 'grid' but no grid was given")
        return grid.size
    return 1


CellKey = tuple  # (split, psf_bin, depth_bin) or (split, psf_bin, depth_bin, selection_set_id)


def plan_cells(cell_sizes: dict[CellKey, int], settings: Stage4aConfig, n_cfg: int) -> list[CellPlan]:
    """Hosts and rows per cell from the number of eligible hosts per (split, psf_bin, depth_bin[, set]).

    Control rows and null-injection rows are allotted by cumulative rounding over the cells of each
    (selection set, split) in cell order, so the control fraction and the null share of every split are
    within half a row of their targets. Raises :class:`ManifestTooLarge` when the total exceeds
    ``settings.max_rows``.
    """
    frac = settings.effective_control_fraction()
    null_frac = float(getattr(settings, "null_fraction", 0.0) or 0.0)
    per_cell = settings.effective_hosts_per_cell()
    paired = settings.control_mode == "paired"
    reps = settings.replicates
    plans: list[CellPlan] = []
    sized = {(k[0], int(k[1]), int(k[2]), k[3] if len(k) > 3 and k[3] is not None else ALL_HOSTS_SET): v
             for k, v in cell_sizes.items()}
    keys = sorted(sized, key=lambda k: (k[3], k[0], k[1], k[2]))
    for set_id, split in sorted({(k[3], k[0]) for k in keys}):
        ks = [k for k in keys if k[0] == split and k[3] == set_id]
        n = np.array([sized[k] for k in ks], dtype=np.int64)
        if settings.tier == "train":
            # keep enough hosts aside as controls (one row each); n_hosts_per_cell caps the positives
            reserve = np.zeros(len(ks), dtype=np.int64) if paired else reserved_control_hosts(n, frac, reps)
            n_pos = n - reserve if per_cell is None else np.minimum(n - reserve, per_cell)
            rows = n_pos * reps
            n_ctrl = reserve if (per_cell is None and not paired) else controls_per_cell(rows, frac)
        else:
            n_pos = n if per_cell is None else np.minimum(n, per_cell)
            rows = n_pos * n_cfg * reps
            n_ctrl = controls_per_cell(rows, frac)
        n_null = np.minimum(cumulative_round(rows * null_frac), rows) if null_frac > 0 else np.zeros(len(ks), np.int64)
        for k, nh, npos, nr, nc, nn in zip(ks, n, n_pos, rows, n_ctrl, n_null):
            plans.append(CellPlan(k[0], int(k[1]), int(k[2]), int(nh), int(npos), int(nr), int(nc), int(nn), k[3]))
    total = sum(c.n_pos_rows + c.n_controls for c in plans)
    if total > settings.max_rows:
        n_hosts = sum(c.n_pos_hosts for c in plans)
        formula = (f"{n_hosts} hosts × {reps} replicates" if settings.tier == "train"
                   else f"{n_hosts} hosts × {n_cfg} configs × {reps} replicates")
        raise ManifestTooLarge(
            f"stage4a.max_rows = {settings.max_rows}: the manifest would have {total} rows ({formula} = "
            f"{sum(c.n_pos_rows for c in plans)} injections + {sum(c.n_controls for c in plans)} controls); "
            f"lower n_hosts_per_cell or replicates, use a smaller grid, or raise max_rows")
    return plans


def expected_rows(n_hosts: int, n_configs: int, replicates: int, control_fraction: float) -> int:
    """Rows of a debug/grid-tier manifest: n_hosts × n_configs × replicates injections plus controls
    ≈ injections × f/(1−f)."""
    pos = n_hosts * n_configs * replicates
    return pos + round(pos * control_fraction / (1.0 - control_fraction))


def manifest_schema(host_schema: pa.Schema | None = None) -> pa.Schema:
    """Arrow schema of the manifest: task columns with fixed types; host columns with the parent's types
    (``host_schema``) or the defaults of :data:`OPTIONAL_HOST_COLUMNS`."""
    defaults = {"galaxy_id": pa.string(), "brickname": pa.string(), "region_split": pa.string(),
                "ra": pa.float64(), "dec": pa.float64(), "psfsize_r": pa.float64(), "psfdepth_r": pa.float64(),
                "mag_r": pa.float64(), **OPTIONAL_HOST_COLUMNS}
    fields = []
    for name in COLUMN_ORDER:
        if name in TASK_FIELDS:
            fields.append(pa.field(name, TASK_FIELDS[name]))
        elif host_schema is not None and name in host_schema.names and name not in (
                "ra", "dec", "psfsize_r", "psfdepth_r", "mag_r", "galaxy_id", "brickname", "region_split"):
            fields.append(pa.field(name, host_schema.field(name).type))
        else:
            fields.append(pa.field(name, defaults[name]))
    return pa.schema(fields)


def build_cell(
    cell_hosts: pa.Table,
    cell: CellPlan,
    settings: Stage4aConfig,
    *,
    experiment_id: str,
    seed: int,
    grid: Grid | None,
    priors: Priors,
    schema: pa.Schema | None = None,
) -> pa.Table:
    """All manifest rows of one cell, from that cell's eligible hosts (any row order; prepared and binned).

    Hosts are ordered by galaxy_id then xxhash64(galaxy_id, seed); the first ``cell.n_pos_hosts`` receive
    injections, the others form the control pool. Depends on nothing outside the cell, so cells can be
    built in parallel in any order.
    """
    if cell_hosts.num_rows != cell.n_hosts:
        raise ManifestError(f"cell {cell.label}: {cell_hosts.num_rows} hosts given, plan says {cell.n_hosts}")
    t = cell_hosts.take(pc.sort_indices(cell_hosts, sort_keys=[("galaxy_id", "ascending")]))
    gid = _column(t, "galaxy_id").astype(object)
    if len(gid) > 1 and np.any(gid[1:] == gid[:-1]):
        raise ManifestError(f"host table: duplicate galaxy_id {gid[1:][gid[1:] == gid[:-1]][0]!r}")
    order = np.argsort(hash64_array(gid.tolist(), seed).view(np.uint64), kind="stable")
    reps = settings.replicates
    configs = grid.configs() if settings.parameter_source == "grid" else []
    n_cfg = len(configs) if configs else 1
    paired = settings.control_mode == "paired"

    hosts_pos = order[: cell.n_pos_hosts]
    if settings.tier == "train":
        offset = int(np.int64(stable_hash64(cell.label, seed)).view(np.uint64) % np.uint64(n_cfg))
        h = np.repeat(hosts_pos, reps)
        r = np.tile(np.arange(reps, dtype=np.int64), cell.n_pos_hosts)
        k = (np.repeat(np.arange(cell.n_pos_hosts, dtype=np.int64), reps) * reps + r + offset) % n_cfg
    else:
        h = np.repeat(hosts_pos, n_cfg * reps)
        k = np.tile(np.repeat(np.arange(n_cfg, dtype=np.int64), reps), cell.n_pos_hosts)
        r = np.tile(np.arange(reps, dtype=np.int64), cell.n_pos_hosts * n_cfg)
    cfg_ids = np.array([c.config_id for c in configs] if configs else [PRIOR_CONFIG_ID], dtype=object)
    p_cid = cfg_ids[k]
    prefix = experiment_id if cell.selection_set_id == ALL_HOSTS_SET else f"{experiment_id}/{cell.selection_set_id}"
    p_tid = np.array([f"{prefix}/{g}/{c}/r{x}" for g, c, x in zip(gid[h], p_cid, r.tolist())], dtype=object)
    p_seed = hash64_array(p_tid.tolist(), seed) if len(p_tid) else np.zeros(0, dtype=np.int64)
    is_null = null_rows(p_tid, cell.n_null, seed)

    # null injections are matched first, so each gets a control when the cell has enough of them
    pos_order = np.lexsort((p_seed.view(np.uint64), ~is_null)) if len(p_tid) else np.zeros(0, dtype=np.int64)
    m = match_controls(cell.n_controls, pos_order, h, order[cell.n_pos_hosts:], paired=paired)
    c_tid = np.array([f"{p}/ctl{j}" for p, j in zip(p_tid[m.positive], m.j.tolist())], dtype=object)
    c_seed = hash64_array(c_tid.tolist(), seed) if len(c_tid) else np.zeros(0, dtype=np.int64)

    fwhm_r = moffat_fwhm_r(_column(t, "psfsize_r"), beta=settings.psf_beta)
    pos_cols = _positive_columns(t, settings, priors, grid, configs, h, k, r, p_cid, p_tid, p_seed, fwhm_r,
                                 experiment_id, is_null)
    ctl_cols = _control_columns(t, settings, grid, m.host, p_tid[m.positive], c_tid, c_seed, r[m.positive],
                                fwhm_r, experiment_id)
    pos_cols["selection_set_id"] = [cell.selection_set_id] * len(h)
    ctl_cols["selection_set_id"] = [cell.selection_set_id] * len(m.host)
    schema = schema if schema is not None else manifest_schema(t.schema)
    return pa.concat_tables([_assemble(t, pos_cols, h, schema), _assemble(t, ctl_cols, m.host, schema)])


def null_rows(task_ids: np.ndarray, n_null: int, seed: int) -> np.ndarray:
    """Boolean mask of the ``n_null`` positive rows made null injections: the smallest xxhash64 of
    ``<task_id>|null`` (independent of the order of ``task_ids``)."""
    out = np.zeros(len(task_ids), dtype=bool)
    if n_null <= 0 or len(task_ids) == 0:
        return out
    hv = hash64_array([f"{t}|null" for t in task_ids], seed).view(np.uint64)
    out[np.lexsort((np.asarray(task_ids, dtype=str), hv))[: int(n_null)]] = True
    return out


def summarize_counts(cells: list[CellPlan], rows: list[dict[str, Any]], settings: Stage4aConfig, *,
                     n_input: int, dropped: dict[str, int], n_cfg: int) -> dict[str, Any]:
    """Counts for ``_stage_config.json``; ``rows`` holds, per (region_split, is_control), the keys
    ``region_split``, ``is_control``, ``n`` (rows), ``hosts`` (distinct galaxy_ids) and optionally
    ``resolved`` (rows with θE / host r-band Moffat FWHM ≥ ``settings.resolved.theta_e_over_psf_min``).
    ``rows_positive`` counts every non-control row (injections and null injections); ``rows_null`` the null
    injections."""
    per_split: dict[str, dict[str, Any]] = {}
    for s in sorted({c.split for c in cells}):
        cs = [c for c in cells if c.split == s]
        got = {int(r["is_control"]): r for r in rows if r["region_split"] == s}
        n_pos = int(got[0]["n"]) if 0 in got else 0
        n_ctl = int(got[1]["n"]) if 1 in got else 0
        per_split[s] = {
            "hosts_eligible": int(sum(c.n_hosts for c in cs)),
            "hosts_positive": int(got[0]["hosts"]) if 0 in got else 0,
            "hosts_control": int(got[1]["hosts"]) if 1 in got else 0,
            "rows_positive": n_pos,
            "rows_control": n_ctl,
            "rows_null": int(sum(c.n_null for c in cs)),
            "controls_missing": int(sum(c.n_controls for c in cs) - n_ctl),
            "control_fraction": (n_ctl / (n_pos + n_ctl)) if (n_pos + n_ctl) else 0.0,
            "rows_positive_resolved": int(got[0].get("resolved", 0)) if 0 in got else 0,
            "cells": len(cs),
        }
    tot_pos = sum(v["rows_positive"] for v in per_split.values())
    tot_ctl = sum(v["rows_control"] for v in per_split.values())
    tot_null = sum(v["rows_null"] for v in per_split.values())
    tier = settings.tier
    per_set: dict[str, dict[str, int]] = {}
    for c in cells:
        d = per_set.setdefault(c.selection_set_id, {"hosts_eligible": 0, "rows_positive": 0, "rows_null": 0,
                                                     "rows_control_planned": 0})
        d["hosts_eligible"] += c.n_hosts
        d["rows_positive"] += c.n_pos_rows
        d["rows_null"] += c.n_null
        d["rows_control_planned"] += c.n_controls
    return {
        "tier": tier,
        "rows_in": int(n_input),
        "hosts_eligible": int(sum(c.n_hosts for c in cells)),
        "hosts_dropped": dict(dropped),
        "n_configs": int(n_cfg),
        "replicates": int(settings.replicates),
        "control_fraction_target": settings.effective_control_fraction(),
        "rows_positive": int(tot_pos),
        "rows_injection": int(tot_pos - tot_null),
        "rows_null": int(tot_null),
        "null_fraction_target": float(getattr(settings, "null_fraction", 0.0) or 0.0),
        "rows_control": int(tot_ctl),
        "rows_out": int(tot_pos + tot_ctl),
        "selection_sets": sorted(per_set),
        "per_selection_set": per_set,
        "resolved_theta_e_over_psf_min": settings.resolved.theta_e_over_psf_min,
        "resolved_fraction": (sum(v["rows_positive_resolved"] for v in per_split.values()) / tot_pos
                              if tot_pos else None),
        "per_split": per_split,
        "per_tier": {tier: {"rows_positive": int(tot_pos), "rows_control": int(tot_ctl),
                            "per_split": {s: v["rows_positive"] + v["rows_control"] for s, v in per_split.items()}}},
        "cells": {c.label: {"hosts": c.n_hosts, "hosts_positive": c.n_pos_hosts, "rows_positive": c.n_pos_rows,
                            "rows_control": c.n_controls} for c in cells},
    }


def count_rows(table: pa.Table, theta_e_over_psf_min: float = 1.0) -> list[dict[str, Any]]:
    """Per (region_split, is_control): rows, distinct hosts and resolved rows (θE / FWHM_r ≥ the minimum)."""
    split = _column(table, "region_split").astype(object)
    ctl = _column(table, "is_control")
    gid = _column(table, "galaxy_id").astype(object)
    ratio = np.nan_to_num(_column(table, "theta_e_over_psf").astype(np.float64), nan=-1.0)
    out = []
    for s in sorted(set(split.tolist())):
        for c in (0, 1):
            sel = (split == s) & (ctl == c)
            if sel.any():
                out.append({"region_split": s, "is_control": c, "n": int(sel.sum()),
                            "hosts": len(set(gid[sel].tolist())),
                            "resolved": int(np.sum(sel & (ratio >= theta_e_over_psf_min)))})
    return out


def build_manifest(
    hosts: pa.Table,
    settings: Stage4aConfig,
    *,
    experiment_id: str,
    seed: int,
    grid: Grid | None = None,
    priors: Priors | None = None,
    exclude: np.ndarray | None = None,
) -> ManifestResult:
    """Build the whole manifest for ``hosts`` (parent rows already restricted to the host flag/selection set).

    ``grid`` is required when ``settings.parameter_source == "grid"``; ``priors`` defaults to
    ``parse_priors(settings.priors)``; ``exclude`` is an optional boolean mask (aligned with ``hosts``) of
    hosts to drop (e.g. near a known lens). Raises :class:`ManifestTooLarge` before building any row when
    the row count would exceed ``settings.max_rows``. Rows are sorted by ``task_id``. Stage 4a runs the same
    steps with the cells built in parallel by Spark.
    """
    n_cfg = n_configs(settings, grid)
    priors = priors if priors is not None else parse_priors(settings.priors)
    if exclude is not None and len(exclude) != hosts.num_rows:
        raise ManifestError(f"exclude mask has {len(exclude)} entries for {hosts.num_rows} hosts")
    t = prepare_hosts(hosts)
    gid = _column(t, "galaxy_id").astype(object)
    sid = _column(t, "selection_set_id").astype(object)
    pairs = [f"{a}|{b}" for a, b in zip(sid.tolist(), gid.tolist())]
    if len(set(pairs)) != len(pairs):
        srt = np.sort(np.array(pairs, dtype=object))
        set_id, _, g = str(srt[1:][srt[1:] == srt[:-1]][0]).partition("|")
        raise ManifestError(f"host table: duplicate galaxy_id {g!r} (selection_set_id {set_id!r})")
    reasons = drop_reasons(t, exclude)
    ok = np.array([x is None for x in reasons], dtype=bool)
    dropped = {k: int(v) for k, v in zip(*np.unique(reasons[~ok].astype(str), return_counts=True))} if (~ok).any() else {}
    t = t.filter(pa.array(ok))
    if t.num_rows == 0:
        raise ManifestError(f"no eligible hosts (dropped by reason: {dropped or 'none'}; input rows {hosts.num_rows})")
    edges = bin_edges(_column(t, "psfsize_r"), _column(t, "psfdepth_r"), settings)
    t = add_bins(t, edges)
    split = _column(t, "region_split").astype(object)
    pb, db = _column(t, "psf_bin"), _column(t, "depth_bin")
    keys = list(zip(split.tolist(), pb.tolist(), db.tolist(), _column(t, "selection_set_id").astype(object).tolist()))
    sizes: dict[tuple, int] = {}
    for key in keys:
        sizes[key] = sizes.get(key, 0) + 1
    cells = plan_cells(sizes, settings, n_cfg)
    schema = manifest_schema(t.schema)
    key_arr = np.array([cell_label(*k) for k in keys], dtype=object)
    parts = [build_cell(t.filter(pa.array(key_arr == c.label)), c, settings, experiment_id=experiment_id,
                        seed=seed, grid=grid, priors=priors, schema=schema) for c in cells]
    table = pa.concat_tables(parts)
    table = table.take(pc.sort_indices(table, sort_keys=[("task_id", "ascending")]))
    counts = summarize_counts(cells, count_rows(table, settings.resolved.theta_e_over_psf_min), settings,
                              n_input=hosts.num_rows, dropped=dropped,
                              n_cfg=n_cfg)
    return ManifestResult(table=table, counts=counts, bin_edges=edges, dropped=dropped, cells=cells)


def _positive_columns(t, settings, priors, grid, configs, host, cfg_idx, rep, cid, tid, seeds, fwhm_r,
                      experiment_id, is_null=None) -> dict[str, Any]:
    n = len(host)
    is_null = np.zeros(n, dtype=bool) if is_null is None else np.asarray(is_null, dtype=bool)
    targeting = settings.brightness_targeting
    d = draw_priors(seeds, priors, stratify=("target_snr",) if targeting else ()) if n else \
        {k: np.zeros(0) for k in priors.dists}
    fwhm = fwhm_r[host]
    if configs:
        arr = {a: np.array([getattr(c, a) for c in configs], dtype=np.float64)[cfg_idx]
               for a in ("theta_e_arcsec", "src_dmag", "src_reff_arcsec", "src_e", "shear")}
    else:
        arr = {a: d[a] for a in ("theta_e_arcsec", "src_dmag", "src_reff_arcsec", "src_e", "shear")}
        if settings.theta_e_mode == "psf_ratio":
            arr["theta_e_arcsec"] = d["theta_e_over_psf"] * fwhm
    theta_e = arr["theta_e_arcsec"]
    host_mag_r = _column(t, "mag_r")[host]
    if settings.src_mag_mode == "absolute":
        mag_r = d["src_mag_r"]
        dmag = mag_r - host_mag_r
    else:
        dmag = arr["src_dmag"]
        mag_r = host_mag_r + dmag
    # null injection: zero source flux (magnitude +inf), no brightness target
    dmag = np.where(is_null, np.inf, dmag)
    mag_r = np.where(is_null, np.inf, mag_r)
    lens_e1, lens_e2 = polar_components(d["lens_e"], d["lens_pa_rad"])
    g1, g2 = polar_components(arr["shear"], d["shear_pa_rad"])
    se1, se2 = polar_components(arr["src_e"], d["src_pa_rad"])
    sx, sy = source_offset(d["src_offset_frac"], d["src_offset_pa_rad"], theta_e)
    cosmos = settings.source_mode == "cosmos"
    return {
        "task_id": tid, "task_seed": seeds, "experiment_id": [experiment_id] * n, "tier": [settings.tier] * n,
        "is_control": np.zeros(n, dtype=np.int32), "control_of": pa.nulls(n, pa.string()),
        "config_id": cid, "grid_name": [grid.name if configs else None] * n, "replicate": rep.astype(np.int32),
        "lens_model": np.where(is_null, NULL_LENS_MODEL, "SIE").astype(object), "theta_e_arcsec": theta_e, "lens_e1": lens_e1, "lens_e2": lens_e2,
        "lens_pa_rad": d["lens_pa_rad"], "gamma1": g1, "gamma2": g2, "src_x_arcsec": sx, "src_y_arcsec": sy,
        "src_reff_arcsec": arr["src_reff_arcsec"], "src_n_sersic": d["src_n_sersic"], "src_e1": se1,
        "src_e2": se2, "src_dmag": dmag, "src_mag_r": mag_r, "src_mag_g": pa.nulls(n, pa.float64()),
        "src_mag_z": pa.nulls(n, pa.float64()), "src_gr": d["src_gr"], "src_rz": d["src_rz"],
        "target_snr": (pa.array(np.where(is_null, np.nan, d["target_snr"]), mask=is_null) if targeting
                       else pa.nulls(n, pa.float64())),
        "target_snr_metric": (pa.array(np.where(is_null, None, settings.target_snr_metric).tolist(), pa.string())
                              if targeting else pa.nulls(n, pa.string())),
        "source_mode": [settings.source_mode] * n, "cosmos_index": np.full(n, -1, dtype=np.int64),
        "src_hlr_target_arcsec": (arr["src_reff_arcsec"] if cosmos and settings.cosmos_match_reff
                                  else pa.nulls(n, pa.float64())),
        "stamp_size": np.full(n, settings.stamp_size, dtype=np.int32),
        "psf_fwhm_r_arcsec": fwhm, "theta_e_over_psf": theta_e / fwhm,
    }


def _control_columns(t, settings, grid, host, control_of, tid, seeds, rep, fwhm_r, experiment_id) -> dict[str, Any]:
    n = len(host)
    nulls = {k: pa.nulls(n, TASK_FIELDS[k]) for k in (
        "lens_e1", "lens_e2", "lens_pa_rad", "gamma1", "gamma2", "src_x_arcsec", "src_y_arcsec",
        "src_reff_arcsec", "src_n_sersic", "src_e1", "src_e2", "src_dmag", "src_mag_r", "src_mag_g",
        "src_mag_z", "src_gr", "src_rz", "target_snr", "target_snr_metric", "source_mode",
        "src_hlr_target_arcsec")}
    return {
        "task_id": tid, "task_seed": seeds, "experiment_id": [experiment_id] * n, "tier": [settings.tier] * n,
        "is_control": np.ones(n, dtype=np.int32), "control_of": control_of, "config_id": [CONTROL_CONFIG_ID] * n,
        "grid_name": [grid.name if settings.parameter_source == "grid" else None] * n,
        "replicate": np.asarray(rep, dtype=np.int32), "lens_model": ["CONTROL"] * n,
        "theta_e_arcsec": np.zeros(n), "cosmos_index": np.full(n, -1, dtype=np.int64),
        "stamp_size": np.full(n, settings.stamp_size, dtype=np.int32),
        "psf_fwhm_r_arcsec": fwhm_r[host], "theta_e_over_psf": np.zeros(n), **nulls,
    }


def _assemble(t: pa.Table, cols: dict[str, Any], host: np.ndarray, schema: pa.Schema) -> pa.Table:
    """Host columns taken at ``host`` plus task columns, in the order and types of ``schema``."""
    idx = pa.array(np.asarray(host, dtype=np.int64))
    data = []
    for f in schema:
        if f.name in cols:
            v = cols[f.name]
            arr = v if isinstance(v, pa.Array) else pa.array(v, type=f.type)
        else:
            arr = t.column(f.name).take(idx)
        if arr.type != f.type:
            arr = pc.cast(arr, f.type)
        data.append(arr)
    return pa.Table.from_arrays(data, schema=schema)
