"""The stage 4a injection manifest, built from a host table without Spark.

Given the parent rows that may host an injection (one row per galaxy, DESIGN §5 parent columns) and the
stage 4a settings, :func:`build_manifest` returns one row per task (injection or control) with the DESIGN §5
manifest columns plus the extras listed in INTERFACES.md ("Manifest").

Procedure (every step ordered by xxhash64, never by input order or partitioning):

1. Hosts are sorted by ``galaxy_id``; hosts without a usable r-band PSF size, depth or magnitude, or near a
   known lens, are dropped and counted by reason.
2. PSF bins (quantiles of ``psfsize_r``) and depth bins (quantiles of the 5σ ``psfdepth_r`` magnitude) over
   the eligible hosts; a cell is (region_split, psf_bin, depth_bin).
3. Inside a cell, hosts are ordered by ``xxhash64(galaxy_id, seed)``. Tiers ``debug``/``grid``: the first
   ``n_hosts_per_cell`` hosts are positives and each gets every grid config × ``replicates``. Tier
   ``train``: each positive host gets ``replicates`` rows, each with one config (assigned round-robin over
   the hash order, so configs are balanced within each cell) or one prior draw; enough hosts are kept aside
   as controls to reach the control fraction.
4. Controls per cell = cumulative rounding of positives × f/(1−f) (per split, so totals never drift). In
   unpaired mode a control is one of the cell's non-positive hosts (hash order, reused only when the cell
   has too few), matched to a positive row of the same cell (``control_of``). In paired mode it is the
   positive's own host.
5. ``task_id`` = ``<experiment_id>/<galaxy_id>/<config_id>/r<replicate>`` for injections and
   ``<task_id of its positive>/ctl<j>`` for controls; ``task_seed`` = xxhash64(task_id, seed=run seed) as a
   signed int64. Continuous parameters come from :func:`dhs.sampling.priors.draw_priors` on the task seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dhs.sampling.controls import controls_per_cell, match_controls, reserved_control_hosts
from dhs.sampling.grids import Grid
from dhs.sampling.hashing import hash64_array, stable_hash64
from dhs.sampling.priors import Priors, draw_priors, moffat_fwhm_r, parse_priors, polar_components, source_offset
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
    "selection_sets": pa.list_(pa.string()),
}
"""Parent columns copied into the manifest when present (null columns of this type otherwise)."""

CONTROL_CONFIG_ID = "control"
_EXCLUDE = "__exclude"
PRIOR_CONFIG_ID = "prior"

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
    "src_gr": pa.float64(), "src_rz": pa.float64(), "target_arc_snr_sum": pa.float64(),
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
    "ebv", "mag_r", "type", "selection_sets", "tier", "replicate", "target_arc_snr_sum", "src_mag_g",
    "src_mag_z", "lens_pa_rad", "src_hlr_target_arcsec",
    # further extras
    "region_id", "grid_name", "psf_fwhm_r_arcsec", "theta_e_over_psf",
)
"""Manifest columns in output order: DESIGN §5, then the INTERFACES extras, then ours."""


class ManifestError(ValueError):
    """The host table or settings cannot give a manifest; the message names the column or key."""


class ManifestTooLarge(ManifestError):
    """The manifest would exceed ``stage4a.max_rows``."""


@dataclass
class ManifestResult:
    """The manifest table plus what goes into ``_stage_config.json``."""

    table: pa.Table
    counts: dict[str, Any]
    bin_edges: dict[str, list[float]]
    dropped: dict[str, int] = field(default_factory=dict)


def _column(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False)


def _host_table(hosts: pa.Table) -> pa.Table:
    """Check required columns, add missing optional ones as nulls, sort by galaxy_id, refuse duplicates."""
    missing = [c for c in REQUIRED_HOST_COLUMNS if c not in hosts.column_names]
    if missing:
        raise ManifestError(f"host table: missing column(s) {missing}; have {hosts.column_names}")
    cols = {c: hosts.column(c) for c in REQUIRED_HOST_COLUMNS}
    for c, typ in OPTIONAL_HOST_COLUMNS.items():
        cols[c] = hosts.column(c) if c in hosts.column_names else pa.nulls(hosts.num_rows, typ)
    if _EXCLUDE in hosts.column_names:
        cols[_EXCLUDE] = hosts.column(_EXCLUDE)
    for c in ("ra", "dec", "psfsize_r", "psfdepth_r", "mag_r"):
        try:
            cols[c] = pc.cast(cols[c], pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ManifestError(f"host table: column {c!r} must be numeric (got {cols[c].type})") from exc
    t = pa.table(cols)
    t = t.take(pc.sort_indices(t, sort_keys=[("galaxy_id", "ascending")]))
    gid = _column(t, "galaxy_id")
    if len(gid) > 1:
        dup = gid[1:] == gid[:-1]
        if dup.any():
            raise ManifestError(f"host table: duplicate galaxy_id {gid[1:][dup][0]!r} (row keys must be unique)")
    return t


def _eligibility(t: pa.Table, exclude: np.ndarray | None) -> tuple[np.ndarray, dict[str, int]]:
    """Mask of usable hosts and counts of dropped ones by (first) reason."""
    n = t.num_rows
    checks = [
        ("bad_position", ~(np.isfinite(_column(t, "ra")) & np.isfinite(_column(t, "dec")))),
        ("bad_psfsize_r", ~(np.nan_to_num(_column(t, "psfsize_r"), nan=-1.0) > 0)),
        ("bad_psfdepth_r", ~(np.nan_to_num(_column(t, "psfdepth_r"), nan=-1.0) > 0)),
        ("bad_mag_r", ~np.isfinite(_column(t, "mag_r"))),
        ("bad_region_split", pc.is_null(t.column("region_split")).to_numpy(zero_copy_only=False)),
    ]
    if exclude is not None:
        checks.append(("near_known_lens", np.asarray(exclude, dtype=bool)))
    ok = np.ones(n, dtype=bool)
    dropped: dict[str, int] = {}
    for reason, bad in checks:
        newly = ok & bad
        if newly.any():
            dropped[reason] = int(newly.sum())
        ok &= ~bad
    return ok, dropped


def _uint_order(h: np.ndarray) -> np.ndarray:
    return np.argsort(np.asarray(h, dtype=np.int64).view(np.uint64), kind="stable")


@dataclass
class _Cell:
    split: str
    psf_bin: int
    depth_bin: int
    hosts: np.ndarray          # host indices in hash order
    n_pos_hosts: int = 0
    n_pos_rows: int = 0
    n_controls: int = 0

    @property
    def label(self) -> str:
        return f"{self.split}|p{self.psf_bin}|d{self.depth_bin}"


def _cells(split: np.ndarray, psf_bin: np.ndarray, depth_bin: np.ndarray, h: np.ndarray) -> list[_Cell]:
    """Cells in (split, psf_bin, depth_bin) order, hosts inside each in xxhash order."""
    splits = sorted(set(split.tolist()))
    code = np.searchsorted(np.array(splits, dtype=object), split)
    order = np.lexsort((np.asarray(h, dtype=np.int64).view(np.uint64), depth_bin, psf_bin, code))
    keys = np.stack([code[order], psf_bin[order], depth_bin[order]], axis=1)
    starts = np.flatnonzero(np.concatenate([[True], np.any(keys[1:] != keys[:-1], axis=1)]))
    ends = np.concatenate([starts[1:], [len(order)]])
    return [_Cell(splits[keys[s, 0]], int(keys[s, 1]), int(keys[s, 2]), order[s:e]) for s, e in zip(starts, ends)]


def expected_rows(n_hosts: int, n_configs: int, replicates: int, control_fraction: float) -> int:
    """Rows of a debug/grid-tier manifest: n_hosts × n_configs × replicates positives plus controls
    ≈ positives × f/(1−f)."""
    pos = n_hosts * n_configs * replicates
    return pos + int(round(pos * control_fraction / (1.0 - control_fraction)))


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
    """Build the manifest for ``hosts`` (parent rows already restricted to the host flag/selection set).

    ``grid`` is required when ``settings.parameter_source == "grid"``; ``priors`` defaults to
    ``parse_priors(settings.priors)``; ``exclude`` is an optional boolean mask (aligned with ``hosts``) of
    hosts to drop (e.g. near a known lens). Raises :class:`ManifestTooLarge` before building anything when
    the row count would exceed ``settings.max_rows``.
    """
    if settings.parameter_source == "grid" and grid is None:
        raise ManifestError("stage4a.parameter_source is 'grid' but no grid was given")
    priors = priors if priors is not None else parse_priors(settings.priors)
    if exclude is not None:
        if len(exclude) != hosts.num_rows:
            raise ManifestError(f"exclude mask has {len(exclude)} entries for {hosts.num_rows} hosts")
        hosts = hosts.append_column(_EXCLUDE, pa.array(np.asarray(exclude, dtype=bool)))
    t = _host_table(hosts)
    ok, dropped = _eligibility(t, _column(t, _EXCLUDE) if exclude is not None else None)
    t = t.filter(pa.array(ok))
    n_hosts = t.num_rows
    tier = settings.tier
    frac = settings.effective_control_fraction()
    per_cell = settings.effective_hosts_per_cell()
    paired = settings.control_mode == "paired"
    reps = settings.replicates
    configs = grid.configs() if settings.parameter_source == "grid" else []
    n_cfg = len(configs) if configs else 1

    if n_hosts == 0:
        raise ManifestError(f"no eligible hosts (dropped by reason: {dropped or 'none'}; input rows {hosts.num_rows})")

    psfsize_r = _column(t, "psfsize_r")
    depth_mag5 = np.asarray(psfdepth_ivar_to_mag5(_column(t, "psfdepth_r")), dtype=np.float64)
    psf_edges = quantile_edges(psfsize_r, settings.psf_bins)
    depth_edges = quantile_edges(depth_mag5, settings.depth_bins)
    psf_bin = assign_bins(psfsize_r, psf_edges)
    depth_bin = assign_bins(depth_mag5, depth_edges)
    gid = _column(t, "galaxy_id").astype(str).astype(object)
    split = _column(t, "region_split").astype(str).astype(object)
    hkey = hash64_array(gid.tolist(), seed)
    cells = _cells(split, psf_bin, depth_bin, hkey)

    # --- how many hosts and rows per cell (cheap), then the guardrail
    for split_name in sorted({c.split for c in cells}):
        cs = [c for c in cells if c.split == split_name]
        n_avail = np.array([len(c.hosts) if per_cell is None else min(len(c.hosts), per_cell) for c in cs])
        if tier == "train":
            reserve = (np.zeros(len(cs), dtype=np.int64) if paired
                       else reserved_control_hosts(n_avail, frac, reps))
            n_pos_hosts = n_avail - reserve
            rows = n_pos_hosts * reps
            # one control row per reserved host; paired controls follow the positives' rows
            n_ctrl = controls_per_cell(rows, frac) if paired else reserve
        else:
            n_pos_hosts = n_avail
            rows = n_pos_hosts * n_cfg * reps
            n_ctrl = controls_per_cell(rows, frac)
        for c, nh, nr, nc in zip(cs, n_pos_hosts, rows, n_ctrl):
            c.n_pos_hosts, c.n_pos_rows, c.n_controls = int(nh), int(nr), int(nc)
    total = sum(c.n_pos_rows + c.n_controls for c in cells)
    if total > settings.max_rows:
        formula = (f"{sum(c.n_pos_hosts for c in cells)} hosts × {n_cfg} configs × {reps} replicates"
                   if tier != "train" else f"{sum(c.n_pos_hosts for c in cells)} hosts × {reps} replicates")
        raise ManifestTooLarge(
            f"stage4a.max_rows = {settings.max_rows}: the manifest would have {total} rows ({formula} "
            f"= {sum(c.n_pos_rows for c in cells)} injections + {sum(c.n_controls for c in cells)} controls); "
            f"lower n_hosts_per_cell/replicates, use a smaller grid, or raise max_rows")

    # --- positive rows (host index, config index, replicate, cell index)
    p_host, p_cfg, p_rep, p_cell = [], [], [], []
    for ci, c in enumerate(cells):
        hosts_pos = c.hosts[: c.n_pos_hosts]
        if tier == "train":
            rank = np.arange(c.n_pos_hosts, dtype=np.int64)
            offset = int(np.uint64(np.int64(stable_hash64(c.label, seed)).view(np.uint64)) % np.uint64(n_cfg))
            h = np.repeat(hosts_pos, reps)
            r = np.tile(np.arange(reps, dtype=np.int64), c.n_pos_hosts)
            k = (np.repeat(rank, reps) * reps + r + offset) % n_cfg
        else:
            h = np.repeat(hosts_pos, n_cfg * reps)
            k = np.tile(np.repeat(np.arange(n_cfg, dtype=np.int64), reps), c.n_pos_hosts)
            r = np.tile(np.arange(reps, dtype=np.int64), c.n_pos_hosts * n_cfg)
        p_host.append(h)
        p_cfg.append(k)
        p_rep.append(r)
        p_cell.append(np.full(len(h), ci, dtype=np.int64))
    p_host = np.concatenate(p_host).astype(np.int64)
    p_cfg = np.concatenate(p_cfg).astype(np.int64)
    p_rep = np.concatenate(p_rep).astype(np.int64)
    p_cell = np.concatenate(p_cell)
    cfg_ids = np.array([c.config_id for c in configs] if configs else [PRIOR_CONFIG_ID], dtype=object)
    p_cid = cfg_ids[p_cfg]
    p_tid = np.array([f"{experiment_id}/{g}/{k}/r{r}" for g, k, r in zip(gid[p_host], p_cid, p_rep.tolist())],
                     dtype=object)
    p_seed = hash64_array(p_tid.tolist(), seed) if len(p_tid) else np.zeros(0, dtype=np.int64)

    # --- controls
    c_host, c_pos, c_j = [], [], []
    missing_controls: dict[str, int] = {}
    cell_rows = np.split(np.arange(len(p_host)), np.cumsum([c.n_pos_rows for c in cells])[:-1])
    for c, rows in zip(cells, cell_rows):
        if c.n_controls == 0:
            continue
        pos_order = rows[_uint_order(p_seed[rows])]
        pool = c.hosts[c.n_pos_hosts:]
        m = match_controls(c.n_controls, pos_order, p_host, pool, paired=paired)
        if len(m.host) < c.n_controls:
            missing_controls[c.split] = missing_controls.get(c.split, 0) + c.n_controls - len(m.host)
        c_host.append(m.host)
        c_pos.append(m.positive)
        c_j.append(m.j)
    c_host = np.concatenate(c_host) if c_host else np.zeros(0, dtype=np.int64)
    c_pos = np.concatenate(c_pos) if c_pos else np.zeros(0, dtype=np.int64)
    c_j = np.concatenate(c_j) if c_j else np.zeros(0, dtype=np.int64)
    c_tid = np.array([f"{p}/ctl{j}" for p, j in zip(p_tid[c_pos], c_j.tolist())], dtype=object)
    c_seed = hash64_array(c_tid.tolist(), seed) if len(c_tid) else np.zeros(0, dtype=np.int64)

    fwhm_r = moffat_fwhm_r(psfsize_r, beta=settings.psf_beta)
    pos_tab = _positive_columns(t, settings, priors, grid, configs, p_host, p_cfg, p_rep, p_cid, p_tid, p_seed,
                                fwhm_r, experiment_id)
    ctl_tab = _control_columns(t, settings, grid, c_host, p_tid[c_pos], c_tid, c_seed, p_rep[c_pos],
                               fwhm_r, experiment_id)
    bins = {"psf_bin": psf_bin, "depth_bin": depth_bin, "psfdepth_r_mag5": depth_mag5}
    table = pa.concat_tables([_assemble(t, pos_tab, p_host, bins), _assemble(t, ctl_tab, c_host, bins)])
    table = table.take(pc.sort_indices(table, sort_keys=[("task_id", "ascending")]))

    counts = _counts(cells, split, c_host, c_pos, p_host, p_cell, missing_controls, tier, frac,
                     n_hosts, hosts.num_rows, dropped, n_cfg, reps)
    edges = {"psfsize_r_arcsec": psf_edges.tolist(), "psfdepth_r_mag5": depth_edges.tolist()}
    return ManifestResult(table=table, counts=counts, bin_edges=edges, dropped=dropped)


def _positive_columns(t, settings, priors, grid, configs, host, cfg_idx, rep, cid, tid, seeds, fwhm_r,
                      experiment_id) -> dict[str, Any]:
    n = len(host)
    d = draw_priors(seeds, priors) if n else {k: np.zeros(0) for k in priors.dists}
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
    lens_e1, lens_e2 = polar_components(d["lens_e"], d["lens_pa_rad"])
    g1, g2 = polar_components(arr["shear"], d["shear_pa_rad"])
    se1, se2 = polar_components(arr["src_e"], d["src_pa_rad"])
    sx, sy = source_offset(d["src_offset_frac"], d["src_offset_pa_rad"], theta_e)
    cosmos = settings.source_mode == "cosmos"
    return {
        "task_id": tid, "task_seed": seeds, "experiment_id": [experiment_id] * n, "tier": [settings.tier] * n,
        "is_control": np.zeros(n, dtype=np.int32), "control_of": pa.nulls(n, pa.string()),
        "config_id": cid, "grid_name": [grid.name if configs else None] * n, "replicate": rep.astype(np.int32),
        "lens_model": ["SIE"] * n, "theta_e_arcsec": theta_e, "lens_e1": lens_e1, "lens_e2": lens_e2,
        "lens_pa_rad": d["lens_pa_rad"], "gamma1": g1, "gamma2": g2, "src_x_arcsec": sx, "src_y_arcsec": sy,
        "src_reff_arcsec": arr["src_reff_arcsec"], "src_n_sersic": d["src_n_sersic"], "src_e1": se1,
        "src_e2": se2, "src_dmag": dmag, "src_mag_r": mag_r, "src_mag_g": pa.nulls(n, pa.float64()),
        "src_mag_z": pa.nulls(n, pa.float64()), "src_gr": d["src_gr"], "src_rz": d["src_rz"],
        "target_arc_snr_sum": d["target_arc_snr_sum"] if settings.brightness_targeting else pa.nulls(n, pa.float64()),
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
        "src_mag_z", "src_gr", "src_rz", "target_arc_snr_sum", "source_mode", "src_hlr_target_arcsec")}
    return {
        "task_id": tid, "task_seed": seeds, "experiment_id": [experiment_id] * n, "tier": [settings.tier] * n,
        "is_control": np.ones(n, dtype=np.int32), "control_of": control_of, "config_id": [CONTROL_CONFIG_ID] * n,
        "grid_name": [grid.name if settings.parameter_source == "grid" else None] * n,
        "replicate": np.asarray(rep, dtype=np.int32), "lens_model": ["CONTROL"] * n,
        "theta_e_arcsec": np.zeros(n), "cosmos_index": np.full(n, -1, dtype=np.int64),
        "stamp_size": np.full(n, settings.stamp_size, dtype=np.int32),
        "psf_fwhm_r_arcsec": fwhm_r[host], "theta_e_over_psf": np.zeros(n), **nulls,
    }


def _assemble(t: pa.Table, cols: dict[str, Any], host: np.ndarray, bins: dict[str, np.ndarray]) -> pa.Table:
    """Host columns taken at ``host`` plus task columns, in :data:`COLUMN_ORDER` with fixed types."""
    idx = pa.array(np.asarray(host, dtype=np.int64))
    data = {}
    for name in COLUMN_ORDER:
        if name in bins:
            data[name] = pa.array(bins[name][host], type=TASK_FIELDS[name])
        elif name in TASK_FIELDS:
            v = cols[name]
            data[name] = v if isinstance(v, pa.Array) else pa.array(v, type=TASK_FIELDS[name])
        else:
            data[name] = t.column(name).take(idx)
    return pa.table(data)


def _counts(cells, split, c_host, c_pos, p_host, p_cell, missing, tier, frac, n_hosts, n_input, dropped,
            n_cfg, reps) -> dict[str, Any]:
    per_split: dict[str, dict[str, Any]] = {}
    for s in sorted({c.split for c in cells}):
        cs = [c for c in cells if c.split == s]
        ctl_hosts = c_host[split[c_host] == s] if len(c_host) else c_host
        n_pos = sum(c.n_pos_rows for c in cs)
        n_ctl = int(len(ctl_hosts))
        per_split[s] = {
            "hosts_eligible": int(sum(len(c.hosts) for c in cs)),
            "hosts_positive": int(sum(c.n_pos_hosts for c in cs)),
            "hosts_control": int(len(np.unique(ctl_hosts))),
            "rows_positive": int(n_pos),
            "rows_control": n_ctl,
            "controls_missing": int(missing.get(s, 0)),
            "control_fraction": (n_ctl / (n_pos + n_ctl)) if (n_pos + n_ctl) else 0.0,
            "cells": len(cs),
        }
    tot_pos = sum(v["rows_positive"] for v in per_split.values())
    tot_ctl = sum(v["rows_control"] for v in per_split.values())
    return {
        "tier": tier,
        "rows_in": int(n_input),
        "hosts_eligible": int(n_hosts),
        "hosts_dropped": dropped,
        "n_configs": int(n_cfg),
        "replicates": int(reps),
        "control_fraction_target": frac,
        "rows_positive": int(tot_pos),
        "rows_control": int(tot_ctl),
        "rows_out": int(tot_pos + tot_ctl),
        "per_split": per_split,
        "per_tier": {tier: {"rows_positive": int(tot_pos), "rows_control": int(tot_ctl),
                            "per_split": {s: v["rows_positive"] + v["rows_control"] for s, v in per_split.items()}}},
    }
