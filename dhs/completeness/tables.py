"""From 4c metrics rows to every stage-4d table, with pandas (the Spark stage reuses the same pieces).

:func:`prepare_columns` adds the derived per-task quantities, :func:`bin_defs` turns the stage-4d bin
settings into :class:`~dhs.completeness.surfaces.BinDef` objects, :func:`derive_batch` makes the per-task
key/count columns (run per Arrow batch in Spark), and :func:`surface_tables` marginalises the aggregated
counts onto every reported surface. :func:`compute_all_pandas` chains them for a table that fits in memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from dhs.completeness.binning import floor_bin
from dhs.completeness.recovery import (
    RecoveryDefinition,
    finite_values,
    join_scores,
    proxy_definition,
    score_definitions,
)
from dhs.completeness.surfaces import (
    POP_COL,
    BinDef,
    aggregate_counts,
    control_mask,
    derive_rows,
    rate_table,
    region_aggregate,
    validity_flags,
)
from dhs.survey.photometry import psfdepth_ivar_to_mag5

__all__ = [
    "RESOLUTION_DENOMINATORS",
    "SURFACES",
    "bin_defs",
    "compute_all_pandas",
    "derive_batch",
    "dimension_descriptions",
    "key_columns",
    "prepare_columns",
    "recovery_definitions",
    "snr_histogram",
    "surface_groupings",
    "surface_tables",
    "valid_control_scores",
]

#: Surfaces reported (names of the bin dimensions; two names = a 2-D surface).
SURFACES: tuple[tuple[str, ...], ...] = (
    ("theta_e",), ("resolution",), ("psf",), ("depth",), ("src_mag",), ("target_snr",), ("region",), ("split",),
    ("resolution_moffat",), ("resolution_psfsize",), ("bad_pixel",), ("wise_brightmask",),
    ("theta_e", "psf"), ("theta_e", "split"), ("resolution", "split"), ("resolution", "bad_pixel"),
    ("resolution", "wise_brightmask"),
)

#: The two resolution denominators: Moffat FWHM applied in 4c, or the catalogue PSFSIZE (the seed's choice).
RESOLUTION_DENOMINATORS: dict[str, str] = {
    "psf_fwhm_used_r": "Moffat FWHM of the r-band PSF applied in stage 4c (arcsec)",
    "psfsize_r": "catalogue PSFSIZE_R, the FWHM of the NEA-equivalent Gaussian (arcsec; the seed system's axis)",
}


def dimension_descriptions(settings: Any) -> dict[str, str]:
    """What each binned dimension is, in words with units (for the report and ``_stage_config.json``)."""
    psf = settings.psf_column
    return {
        "theta_e": "Einstein radius θE (arcsec)",
        "resolution": f"θE / {psf}: {RESOLUTION_DENOMINATORS.get(psf, psf)} (stage4d.psf_column)",
        "resolution_moffat": f"θE / psf_fwhm_used_r: {RESOLUTION_DENOMINATORS['psf_fwhm_used_r']}",
        "resolution_psfsize": f"θE / psfsize_r: {RESOLUTION_DENOMINATORS['psfsize_r']}",
        "psf": f"{psf} (arcsec)",
        "depth": "r-band 5σ point-source depth (AB mag)",
        "src_mag": "source r magnitude (AB mag; src_mag_r_used, else src_mag_r)",
        "target_snr": "brightness target of stage 4a (target_snr, r-band SNR of target_snr_metric)",
        "bad_pixel": "bad_pixel_frac: fraction of stamp pixels bad in any band (invvar 0 or bad maskbits)",
        "wise_brightmask": "wise_brightmask_frac: fraction of stamp pixels in the WISE bright-star mask",
        "region": f"region ({settings.region_column})",
        "split": "region_split",
    }


def prepare_columns(df: pd.DataFrame, psf_column: str = "psf_fwhm_used_r", region_column: str = "region_id") -> pd.DataFrame:
    """Add derived columns (NaN where an input is missing or null):

    ``theta_e_over_psf`` = θE / ``psf_column`` (dimensionless), and the two explicit resolutions
    ``theta_e_over_fwhm`` = θE / ``psf_fwhm_used_r`` and ``theta_e_over_psfsize`` = θE / ``psfsize_r``; ``depth_r_mag5`` = r-band 5σ depth (AB mag) from
    ``psfdepth_r_mag5`` or ``psfdepth_r`` (nanomaggy⁻²); ``src_mag_bin_value`` = ``src_mag_r_used`` else
    ``src_mag_r`` (AB mag); ``target_snr_value`` = ``target_snr`` (the stage 4a brightness target, r-band SNR of
    ``target_snr_metric``); ``region_key`` = the region column
    as text; ``split_key`` = ``region_split``.
    """
    out = df.copy()
    n = len(out)

    def col(name: str) -> np.ndarray:
        return finite_values(out, name) if name in out.columns else np.full(n, np.nan)

    theta, psf = col("theta_e_arcsec"), col(psf_column)

    def ratio(den: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, theta / np.where(den > 0, den, 1.0), np.nan)

    out["theta_e_over_psf"] = ratio(psf)
    out["theta_e_over_fwhm"] = ratio(col("psf_fwhm_used_r"))
    out["theta_e_over_psfsize"] = ratio(col("psfsize_r"))
    if "psfdepth_r_mag5" in out.columns:
        out["depth_r_mag5"] = col("psfdepth_r_mag5")
    else:
        out["depth_r_mag5"] = psfdepth_ivar_to_mag5(col("psfdepth_r"))
    used = col("src_mag_r_used")
    out["src_mag_bin_value"] = np.where(np.isfinite(used), used, col("src_mag_r"))
    out["target_snr_value"] = col("target_snr")
    out["psf_value"] = psf
    if region_column not in out.columns:
        raise KeyError(f"region column {region_column!r} is missing (have: {sorted(map(str, out.columns))})")
    reg = out[region_column]
    if pd.api.types.is_float_dtype(reg) and bool(np.all(np.mod(reg.dropna().to_numpy(), 1) == 0)):
        reg = reg.astype("Int64")  # integer ids that arrived as float (nulls in an Arrow batch): "3", not "3.0"
    out["region_key"] = reg.astype("string")
    out["split_key"] = out["region_split"].astype("string") if "region_split" in out.columns else pd.NA
    return out


def _bin(name: str, column: str, spec: Any) -> BinDef:
    if getattr(spec, "edges", None) is not None:
        return BinDef(name, column, edges=tuple(float(e) for e in spec.edges))
    return BinDef(name, column, width=float(spec.width))


def bin_defs(settings: Any) -> list[BinDef]:
    """BinDefs for every dimension, from a Stage4dConfig-like object (``theta_e_bins``, ...)."""
    return [
        _bin("theta_e", "theta_e_arcsec", settings.theta_e_bins),
        _bin("resolution", "theta_e_over_psf", settings.resolution_bins),
        _bin("psf", "psf_value", settings.psf_bins),
        _bin("depth", "depth_r_mag5", settings.depth_bins),
        _bin("src_mag", "src_mag_bin_value", settings.src_mag_bins),
        _bin("target_snr", "target_snr_value", settings.target_snr_bins),
        _bin("resolution_moffat", "theta_e_over_fwhm", settings.resolution_bins),
        _bin("resolution_psfsize", "theta_e_over_psfsize", settings.resolution_bins),
        _bin("bad_pixel", "bad_pixel_frac", settings.bad_pixel_frac_bins),
        _bin("wise_brightmask", "wise_brightmask_frac", settings.wise_brightmask_frac_bins),
        BinDef("region", "region_key", categorical=True),
        BinDef("split", "split_key", categorical=True),
    ]


def key_columns(bins: Sequence[BinDef]) -> list[str]:
    """Columns the per-task counts are summed over (population + every bin label and lower edge)."""
    return [POP_COL] + [k for b in bins for k in (b.key, b.key_lo)]


def recovery_definitions(settings: Any, control_scores: np.ndarray | None) -> list[RecoveryDefinition]:
    """The proxy, plus score definitions when ``control_scores`` is given (a score table was supplied)."""
    defs = [proxy_definition(settings.snr_min, settings.resolution_min, settings.snr_column, settings.psf_column)]
    if control_scores is not None:
        defs += score_definitions(settings.score_thresholds, settings.target_fprs, control_scores)
    return defs


def valid_control_scores(df: pd.DataFrame, settings: Any) -> np.ndarray:
    """Scores of valid controls (cutout_ok = 1, finite score; clean criteria not applied)."""
    ctrl = control_mask(df)
    v_all, _ = validity_flags(df, ["score"], settings.max_bad_pixel_frac, settings.max_wise_brightmask_frac)
    return finite_values(df, "score")[ctrl & v_all]


def derive_batch(df: pd.DataFrame, settings: Any, definitions: Sequence[RecoveryDefinition]) -> pd.DataFrame:
    """Per-task key and count columns plus ``snr_log_bin`` (floor rule on log10 of the recovery SNR, dex)."""
    prep = prepare_columns(df, settings.psf_column, settings.region_column)
    out = derive_rows(prep, definitions, bin_defs(settings), settings.max_bad_pixel_frac,
                      settings.max_wise_brightmask_frac)
    snr = finite_values(prep, settings.snr_column) if settings.snr_column in prep.columns else np.full(len(prep), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["snr_log_bin"] = floor_bin(np.where(snr > 0, np.log10(np.where(snr > 0, snr, 1.0)), np.nan),
                                       settings.snr_hist_width_dex)
    return out


def snr_histogram(derived: pd.DataFrame, definitions: Sequence[RecoveryDefinition]) -> pd.DataFrame:
    """Counts of valid injections per (θE bin, log10 SNR bin) — the arc-SNR distributions by θE."""
    name = definitions[0].name
    inj = derived[(derived[POP_COL] == 0) & (derived[f"nv__{name}__all"] == 1)]
    return (inj.groupby(["b_theta_e_lo", "snr_log_bin"], dropna=False).size().rename("n").reset_index())


#: Groupings of the false-positive-rate table (controls, score definitions only).
FPR_SURFACES: tuple[tuple[str, ...], ...] = ((), ("split",), ("region",), ("psf",), ("depth",))
#: Groupings summarised across regions (each is also grouped by region).
REGION_GROUPS: tuple[tuple[str, ...], ...] = ((), ("theta_e",), ("resolution",))


def surface_groupings(surfaces: Sequence[Sequence[str]] = SURFACES) -> list[tuple[str, ...]]:
    """Every set of bin dimensions :func:`surface_tables` sums the counts over (each also by population),
    without repeats: the aggregation a large run needs instead of the full joint count table."""
    out: dict[frozenset[str], tuple[str, ...]] = {}
    for g in [(), *map(tuple, surfaces), *FPR_SURFACES, *(("region", *g) for g in REGION_GROUPS)]:
        out.setdefault(frozenset(g), tuple(g))
    return list(out.values())


def _counts_for(counts: pd.DataFrame | Mapping[frozenset[str], pd.DataFrame], names: Sequence[str]) -> pd.DataFrame:
    if isinstance(counts, pd.DataFrame):
        return counts
    return counts[frozenset(names)]


def surface_tables(
    counts: pd.DataFrame | Mapping[frozenset[str], pd.DataFrame],
    bins: Sequence[BinDef],
    definitions: Sequence[RecoveryDefinition],
    cls: Sequence[float] = (0.68, 0.95),
    region_min_count: int = 20,
    surfaces: Sequence[Sequence[str]] = SURFACES,
) -> dict[str, pd.DataFrame]:
    """All reported tables from aggregated counts.

    ``counts`` is the joint count table (population × every bin) or, for large runs, a mapping from each
    set of dimension names of :func:`surface_groupings` to the counts summed over population × those bins.
    Returns ``completeness`` (every surface, injections only), ``fpr`` (controls only, score definitions
    only; empty without scores), ``region_aggregate`` (per θE bin, per resolution bin and overall).
    """
    by = {b.name: b for b in bins}
    comp = pd.concat([rate_table(_counts_for(counts, s), [by[n] for n in s], definitions, "injection", cls)
                      for s in (((),) + tuple(surfaces))], ignore_index=True)
    score_defs = [d for d in definitions if d.kind == "score"]
    if score_defs:
        fpr = pd.concat([rate_table(_counts_for(counts, s), [by[n] for n in s], score_defs, "control", cls)
                         for s in FPR_SURFACES], ignore_index=True)
    else:
        fpr = pd.DataFrame()
    reg = pd.concat([region_aggregate(_counts_for(counts, ("region", *s)), [by[n] for n in s], by["region"],
                                      definitions, region_min_count, cls) for s in REGION_GROUPS], ignore_index=True)
    return {"completeness": comp, "fpr": fpr, "region_aggregate": reg}


def compute_all_pandas(
    metrics: pd.DataFrame, settings: Any, scores: pd.DataFrame | None = None
) -> dict[str, Any]:
    """Everything stage 4d computes from metrics, in pandas: ``definitions``, ``counts``, the tables of
    :func:`surface_tables` and ``snr_hist``. For tables that fit in memory (tests, small runs)."""
    df = join_scores(metrics, scores) if scores is not None else metrics
    cs = valid_control_scores(df, settings) if scores is not None else None
    defs = recovery_definitions(settings, cs)
    bins = bin_defs(settings)
    derived = derive_batch(df, settings, defs)
    counts = aggregate_counts(derived, key_columns(bins), defs)
    out: dict[str, Any] = {"definitions": defs, "counts": counts}
    out.update(surface_tables(counts, bins, defs, tuple(settings.confidence_levels), settings.region_min_count))
    out["snr_hist"] = snr_histogram(derived, defs)
    return out
