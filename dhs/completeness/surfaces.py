"""Completeness surfaces and false-positive rates from per-task rows, NULL-safely.

Pipeline (the same functions serve pandas and Spark; Spark runs :func:`derive_rows` per Arrow batch and
sums the :func:`count_columns` over the key columns):

1. :func:`derive_rows` — per task: population (injection / control), bin labels, and for each recovery
   definition 0/1 integers ``valid_all``, ``valid_clean`` and ``recovered`` (recovered only counts if valid).
2. :func:`aggregate_counts` — sum those integers over the finest combination of keys.
3. :func:`rate_table` — marginalise onto any group of keys and attach Wilson and Jeffreys intervals;
   :func:`region_aggregate` — per-region mean/std and pooled completeness.

Populations (``is_control_row``): 0 injection, 1 control (``lens_model == "CONTROL"`` or ``is_control == 1``),
2 null injection (``lens_model == "NULL"``, the audit rows with zero source flux). Completeness uses
injections only; false-positive rates use controls only; null injections are counted in no rate (only in
``n_attempt`` totals, so that rows in = rows counted).

Selections: ``valid_all`` = ``cutout_ok == 1`` and every column the recovery definition needs is non-null and
finite; ``clean`` = ``valid_all`` and ``bad_pixel_frac <= max`` (with the default 0.2 this is stage 4c's
``clean`` flag) and, beyond that flag, ``wise_brightmask_frac <= max``; ``no_fallback`` = ``valid_all`` and
the PSF came from the psfsize map in every band (``psf_source_g/r/z`` all 0). A NULL anywhere makes a flag
0 — a row is never dropped: it always counts in ``n_attempt``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dhs.completeness.binning import edge_bin, floor_bin, format_edge
from dhs.completeness.intervals import jeffreys_interval, wilson_interval
from dhs.completeness.recovery import RecoveryDefinition, finite_values

__all__ = [
    "POP_CONTROL",
    "POP_INJECTION",
    "POP_NULL",
    "SELECTIONS",
    "BinDef",
    "add_intervals",
    "aggregate_counts",
    "assign_bins",
    "clean_selection_text",
    "control_mask",
    "count_columns",
    "derive_rows",
    "no_fallback_mask",
    "null_mask",
    "population_code",
    "rate_table",
    "region_aggregate",
    "selection_flags",
    "validity_flags",
]

SELECTIONS = ("all", "clean", "no_fallback")
"""Row selections every rate is computed for (see the module docstring)."""
POP_COL = "is_control_row"
"""Population code per row: 0 injection, 1 control, 2 null injection."""
POP_INJECTION, POP_CONTROL, POP_NULL = 0, 1, 2
NULL_LENS_MODEL = "NULL"
PSF_SOURCE_COLUMNS = ("psf_source_g", "psf_source_r", "psf_source_z")
"""Per-band PSF provenance (0 = psfsize map at the host pixel) used by the ``no_fallback`` selection."""
SURFACE_SEP = "_by_"
"""Joins dimension names into a 2-D surface name, e.g. ``theta_e_by_psf``."""


@dataclass(frozen=True)
class BinDef:
    """A binned dimension: ``name`` (e.g. "theta_e"), the source ``column`` and either a regular ``width``
    (floor rule, labelled by the lower edge) or explicit ``edges``; ``categorical`` uses the value as label."""

    name: str
    column: str
    width: float | None = None
    edges: tuple[float, ...] | None = None
    categorical: bool = False

    def __post_init__(self) -> None:
        kinds = (self.width is not None) + (self.edges is not None) + bool(self.categorical)
        if kinds != 1:
            raise ValueError(f"bin {self.name!r}: give exactly one of width, edges or categorical")

    @property
    def key(self) -> str:
        return f"b_{self.name}"

    @property
    def key_lo(self) -> str:
        return f"b_{self.name}_lo"


def _flag(series_ok: np.ndarray) -> np.ndarray:
    return np.asarray(series_ok, dtype=bool)


def control_mask(df: pd.DataFrame) -> np.ndarray:
    """True for control rows: ``lens_model == "CONTROL"`` or ``is_control == 1``.

    Raises ValueError naming the task when the two columns disagree or neither identifies the row.
    """
    has_lm = "lens_model" in df.columns
    has_ic = "is_control" in df.columns
    if not (has_lm or has_ic):
        raise KeyError("need column 'lens_model' or 'is_control' to tell injections from controls")
    lm_ctrl = (df["lens_model"].astype("string") == "CONTROL").fillna(False).to_numpy(bool) if has_lm else None
    lm_null = df["lens_model"].isna().to_numpy() if has_lm else None
    ic = pd.to_numeric(df["is_control"], errors="coerce").to_numpy(dtype=float, na_value=np.nan) if has_ic else None
    if lm_ctrl is not None and ic is not None:
        known = ~lm_null & np.isfinite(ic)
        bad = known & (lm_ctrl != (ic == 1))
        unknown = lm_null & ~np.isfinite(ic)
        for mask, why in ((bad, "lens_model and is_control disagree"), (unknown, "lens_model and is_control are both null")):
            if mask.any():
                i = int(np.flatnonzero(mask)[0])
                tid = df["task_id"].iloc[i] if "task_id" in df.columns else f"row {i}"
                raise ValueError(f"task {tid!r}: {why} (lens_model={df['lens_model'].iloc[i]!r}, "
                                 f"is_control={df['is_control'].iloc[i]!r})")
        return np.where(lm_null, ic == 1, lm_ctrl)
    if lm_ctrl is not None:
        if lm_null.any():
            i = int(np.flatnonzero(lm_null)[0])
            tid = df["task_id"].iloc[i] if "task_id" in df.columns else f"row {i}"
            raise ValueError(f"task {tid!r}: lens_model is null and there is no is_control column")
        return lm_ctrl
    if not np.all(np.isfinite(ic)):
        i = int(np.flatnonzero(~np.isfinite(ic))[0])
        tid = df["task_id"].iloc[i] if "task_id" in df.columns else f"row {i}"
        raise ValueError(f"task {tid!r}: is_control is null and there is no lens_model column")
    return ic == 1


def null_mask(df: pd.DataFrame) -> np.ndarray:
    """True for null injections (``lens_model == "NULL"``); False everywhere without a lens_model column.

    Raises ValueError naming the task when a null row says ``is_control == 1``."""
    if "lens_model" not in df.columns:
        return np.zeros(len(df), dtype=bool)
    out = (df["lens_model"].astype("string").str.upper() == NULL_LENS_MODEL).fillna(False).to_numpy(bool)
    if out.any() and "is_control" in df.columns:
        ic = pd.to_numeric(df["is_control"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        bad = out & (ic == 1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            tid = df["task_id"].iloc[i] if "task_id" in df.columns else f"row {i}"
            raise ValueError(f"task {tid!r}: lens_model is 'NULL' (null injection) but is_control is 1")
    return out


def population_code(df: pd.DataFrame) -> np.ndarray:
    """Per row: 0 injection, 1 control, 2 null injection (int64)."""
    ctrl = control_mask(df)
    code = np.where(ctrl, POP_CONTROL, POP_INJECTION).astype(np.int64)
    code[null_mask(df) & ~ctrl] = POP_NULL
    return code


def no_fallback_mask(df: pd.DataFrame) -> np.ndarray:
    """True where the PSF came from the psfsize map in every band (``psf_source_g/r/z`` all 0); False where
    any band fell back (1 catalogue/brick, 2 r band), is null, or the provenance columns are absent."""
    ok = np.ones(len(df), dtype=bool)
    for c in PSF_SOURCE_COLUMNS:
        if c not in df.columns:
            return np.zeros(len(df), dtype=bool)
        ok &= finite_values(df, c) == 0
    return ok


def selection_flags(
    df: pd.DataFrame,
    required: Sequence[str],
    max_bad_pixel_frac: float = 0.2,
    max_wise_brightmask_frac: float = 0.2,
) -> dict[str, np.ndarray]:
    """Boolean flag per row for every selection of :data:`SELECTIONS` (``all``, ``clean``, ``no_fallback``)."""
    v_all, v_clean = validity_flags(df, required, max_bad_pixel_frac, max_wise_brightmask_frac)
    return {"all": v_all, "clean": v_clean, "no_fallback": v_all & no_fallback_mask(df)}


def validity_flags(
    df: pd.DataFrame,
    required: Sequence[str],
    max_bad_pixel_frac: float = 0.2,
    max_wise_brightmask_frac: float = 0.2,
) -> tuple[np.ndarray, np.ndarray]:
    """(valid_all, valid_clean) boolean arrays; NULL or NaN anywhere → False, never an exception.

    valid_all = cutout_ok == 1 and every ``required`` column finite. valid_clean additionally needs
    ``bad_pixel_frac <= max_bad_pixel_frac`` and ``wise_brightmask_frac <= max_wise_brightmask_frac``
    (fractions of stamp pixels).
    """
    ok = finite_values(df, "cutout_ok") == 1
    for col in required:
        ok &= np.isfinite(finite_values(df, col))
    with np.errstate(invalid="ignore"):
        clean = ok & (finite_values(df, "bad_pixel_frac") <= max_bad_pixel_frac)
        clean &= finite_values(df, "wise_brightmask_frac") <= max_wise_brightmask_frac
    return _flag(ok), _flag(clean)


def clean_selection_text(max_bad_pixel_frac: float, max_wise_brightmask_frac: float,
                         clean_flag_cut: float | None = None) -> str:
    """What the ``clean`` selection of the completeness tables requires, relative to stage 4c's ``clean`` flag
    (``bad_pixel_frac`` ≤ ``clean_flag_cut``, the seed's 0.2)."""
    wise = f"wise_brightmask_frac <= {max_wise_brightmask_frac:g}"
    if clean_flag_cut is None:
        return f"valid and bad_pixel_frac <= {max_bad_pixel_frac:g} and {wise}"
    if max_bad_pixel_frac == clean_flag_cut:
        return (f"stage 4c's clean flag (bad_pixel_frac <= {clean_flag_cut:g}) plus, added by stage 4d, {wise} "
                "(the share of the stamp in the WISE bright-star mask)")
    return (f"bad_pixel_frac <= {max_bad_pixel_frac:g} (stage 4c's clean flag uses {clean_flag_cut:g}) and, added "
            f"by stage 4d, {wise}")


def assign_bins(df: pd.DataFrame, bins: Sequence[BinDef]) -> pd.DataFrame:
    """Bin label (str) and lower edge (float, NaN for categorical / missing) for each dimension."""
    out = {}
    for b in bins:
        if b.column not in df.columns:
            raise KeyError(f"bin {b.name!r}: column {b.column!r} is missing (have: {sorted(map(str, df.columns))})")
        if b.categorical:
            raw = df[b.column]
            lab = raw.astype("string").fillna("nan").to_numpy(dtype=object)
            lo = np.full(len(df), np.nan)
        elif b.width is not None:
            lo = floor_bin(finite_values(df, b.column), b.width)
            lab = np.array(["nan" if not np.isfinite(x) else format_edge(x) for x in lo], dtype=object)
        else:
            lab, lo = edge_bin(finite_values(df, b.column), b.edges)
        out[b.key] = lab
        out[b.key_lo] = np.asarray(lo, dtype=np.float64)
    return pd.DataFrame(out, index=df.index)


def count_columns(definitions: Sequence[RecoveryDefinition]) -> list[str]:
    """Names of the 0/1 columns made by :func:`derive_rows` (summed by the aggregation)."""
    cols = ["n_attempt"]
    for d in definitions:
        for sel in SELECTIONS:
            cols += [f"nv__{d.name}__{sel}", f"nr__{d.name}__{sel}"]
    return cols


def derive_rows(
    df: pd.DataFrame,
    definitions: Sequence[RecoveryDefinition],
    bins: Sequence[BinDef],
    max_bad_pixel_frac: float = 0.2,
    max_wise_brightmask_frac: float = 0.2,
) -> pd.DataFrame:
    """Per-task key and count columns: ``is_control_row``, bin labels, ``n_attempt`` (=1) and, per
    definition and selection, ``nv__<def>__<sel>`` (valid) and ``nr__<def>__<sel>`` (valid and recovered)."""
    out = assign_bins(df, bins)
    out.insert(0, POP_COL, population_code(df))
    out["n_attempt"] = np.ones(len(df), dtype=np.int64)
    for d in definitions:
        flags = selection_flags(df, d.required, max_bad_pixel_frac, max_wise_brightmask_frac)
        rec = d.recovered(df)
        for sel, v in flags.items():
            out[f"nv__{d.name}__{sel}"] = v.astype(np.int64)
            out[f"nr__{d.name}__{sel}"] = (v & rec).astype(np.int64)
    return out


def aggregate_counts(rows: pd.DataFrame, keys: Sequence[str], definitions: Sequence[RecoveryDefinition]) -> pd.DataFrame:
    """Sum the count columns of :func:`derive_rows` output over ``keys`` (NaN keys kept as their own group)."""
    cols = count_columns(definitions)
    keys = list(keys)
    return rows.groupby(keys, dropna=False, sort=True)[cols].sum().reset_index()


def add_intervals(table: pd.DataFrame, k_col: str, n_col: str, rate_col: str,
                  cls: Sequence[float] = (0.68, 0.95)) -> pd.DataFrame:
    """Add ``rate_col`` = k/n (NaN for n = 0) and Wilson / Jeffreys bounds for every level in ``cls``:
    columns ``wilson_lo_68``, ``wilson_hi_68``, ``jeffreys_lo_68``, ... (percent in the name)."""
    k = table[k_col].to_numpy(dtype=np.float64)
    n = table[n_col].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        table[rate_col] = np.where(n > 0, k / np.where(n > 0, n, 1.0), np.nan)
    for cl in cls:
        tag = f"{round(100 * cl):d}"
        for name, fn in (("wilson", wilson_interval), ("jeffreys", jeffreys_interval)):
            lo, hi = fn(k, n, cl)
            table[f"{name}_lo_{tag}"] = lo
            table[f"{name}_hi_{tag}"] = hi
    return table


def rate_table(
    counts: pd.DataFrame,
    group: Sequence[BinDef],
    definitions: Sequence[RecoveryDefinition],
    population: str = "injection",
    cls: Sequence[float] = (0.68, 0.95),
    surface: str | None = None,
) -> pd.DataFrame:
    """Completeness (population="injection") or false-positive rate ("control") grouped by ``group``
    (null injections are in neither).

    Long format, one row per (group bins, recovery, selection): ``surface``, ``recovery``, ``selection``,
    ``dim1``, ``bin1``, ``bin1_lo``, ``dim2``, ``bin2``, ``bin2_lo`` (None/NaN when one-dimensional),
    ``n_attempt``, ``n_valid``, ``n_recovered`` (or ``n_flagged``), ``completeness`` (or ``fpr``), intervals.
    Injections and controls are never mixed: the other population is removed before any sum.
    """
    if population not in ("injection", "control"):
        raise ValueError(f"population must be 'injection' or 'control', got {population!r}")
    sub = counts[counts[POP_COL] == (POP_CONTROL if population == "control" else POP_INJECTION)]
    keys = [k for b in group for k in (b.key_lo, b.key)]  # numeric order of lower edges first
    cols = count_columns(definitions)
    if keys:
        g = sub.groupby(keys, dropna=False, sort=True)[cols].sum().reset_index()
    else:
        g = pd.DataFrame([sub[cols].sum()]).astype(np.int64)
    k_name, rate_name = ("n_flagged", "fpr") if population == "control" else ("n_recovered", "completeness")
    parts = []
    for d in definitions:
        for sel in SELECTIONS:
            t = pd.DataFrame({
                "surface": surface or SURFACE_SEP.join(b.name for b in group) or "total",
                "recovery": d.name,
                "selection": sel,
            }, index=g.index)
            for i in (1, 2):
                b = group[i - 1] if len(group) >= i else None
                t[f"dim{i}"] = b.name if b else None
                t[f"bin{i}"] = g[b.key].astype(object) if b else None
                t[f"bin{i}_lo"] = g[b.key_lo].astype(np.float64) if b else np.nan
            t["n_attempt"] = g["n_attempt"].astype(np.int64)
            t["n_valid"] = g[f"nv__{d.name}__{sel}"].astype(np.int64)
            t[k_name] = g[f"nr__{d.name}__{sel}"].astype(np.int64)
            parts.append(add_intervals(t, k_name, "n_valid", rate_name, cls))
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, ignore_index=True)


def region_aggregate(
    counts: pd.DataFrame,
    group: Sequence[BinDef],
    region: BinDef,
    definitions: Sequence[RecoveryDefinition],
    min_count: int = 20,
    cls: Sequence[float] = (0.68, 0.95),
) -> pd.DataFrame:
    """Across-region summary of completeness per bin of ``group``.

    For each (bin, recovery, selection): ``n_regions`` (with data), ``n_regions_used`` (regions with
    ``n_valid >= min_count``), ``region_mean`` and ``region_std`` (ddof=1; NaN with fewer than 2 regions) of
    the per-region completeness over the used regions, and the pooled counts / completeness / intervals over
    the used regions (``pooled_n_valid``, ``pooled_n_recovered``, ``pooled_completeness``, intervals).
    """
    per = rate_table(counts, [region, *group], definitions, "injection", cls)
    # in ``per`` bin1 is the region and the group dimensions are bin2, bin3, ...
    keys = ["recovery", "selection"] + [c for i in range(2, 2 + len(group)) for c in (f"bin{i}", f"bin{i}_lo")]
    rows = []
    for key, sub in per.groupby(keys, dropna=False, sort=True):
        used = sub[sub["n_valid"] >= min_count]
        c = used["completeness"].to_numpy(dtype=np.float64)
        rec: dict = {"surface": SURFACE_SEP.join(b.name for b in group) or "total"}
        for j, b in enumerate(group, start=1):
            rec[f"dim{j}"] = b.name
        rec.update(dict(zip(keys, key)))
        rec.update({
            "region_dim": region.name,
            "n_regions": int((sub["n_valid"] > 0).sum()),
            "n_regions_used": len(used),
            "region_mean": float(np.mean(c)) if c.size else np.nan,
            "region_std": float(np.std(c, ddof=1)) if c.size >= 2 else np.nan,
            "pooled_n_valid": int(used["n_valid"].sum()),
            "pooled_n_recovered": int(used["n_recovered"].sum()),
            "min_count": int(min_count),
        })
        rows.append(rec)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out = out.rename(columns={f"bin{j + 1}{s}": f"bin{j}{s}" for j in range(1, 1 + len(group)) for s in ("", "_lo")})
    return add_intervals(out, "pooled_n_recovered", "pooled_n_valid", "pooled_completeness", cls)
