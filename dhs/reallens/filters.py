"""Paper IV negative-pool filters on sweep rows, each configurable (``stage6.filters``).

In order: ``footprint`` (dec_min < Dec < dec_max, strict), ``type`` (TYPE in the allowed list), ``nobs``
(NOBS_<band> ≥ min in each band), ``mag`` (mag_<band> < max; a NaN magnitude — flux ≤ 0 or NaN — fails,
or passes with ``missing_passes``),
``maskbits`` (none of the listed bits set), ``known_lens`` (no known lens within the radius, arcsec).
A disabled filter passes every row. Counts are reported two ways: ``failed`` (rows failing each filter on its
own; overlaps counted in every filter they fail) and ``first_failed`` (each rejected row counted once, under
the first filter it fails, so ``rows = kept + Σ first_failed``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord

from dhs.config.stage6 import NegativeFilters
from dhs.survey.maskbits import mask_of
from dhs.survey.photometry import flux_to_mag

FILTER_ORDER: tuple[str, ...] = ("footprint", "type", "nobs", "mag", "maskbits", "known_lens")


def columns_needed(filters: NegativeFilters) -> list[str]:
    """Sweep columns the filters read (lower case)."""
    cols = ["ra", "dec", "type", "maskbits"]
    cols += [f"nobs_{b}" for b in filters.nobs.bands]
    cols.append(f"flux_{filters.mag.band}")
    return list(dict.fromkeys(cols))


def near_any(ra: np.ndarray, dec: np.ndarray, ref_ra: np.ndarray, ref_dec: np.ndarray,
             radius_arcsec: float) -> np.ndarray:
    """True where (ra, dec) [deg] has a reference position within ``radius_arcsec`` (inclusive, float64)."""
    ra = np.asarray(ra, dtype=np.float64)
    out = np.zeros(ra.shape, dtype=bool)
    if ra.size == 0 or np.size(ref_ra) == 0:
        return out
    objs = SkyCoord(ra * u.deg, np.asarray(dec, dtype=np.float64) * u.deg)
    refs = SkyCoord(np.asarray(ref_ra, dtype=np.float64) * u.deg, np.asarray(ref_dec, dtype=np.float64) * u.deg)
    _, sep, _ = objs.match_to_catalog_sky(refs)
    return np.asarray(sep.to_value(u.arcsec) <= radius_arcsec)


def _types(col: Any) -> np.ndarray:
    return np.char.upper(np.char.strip(np.asarray(col).astype(str)))


def filter_failures(cols: Mapping[str, np.ndarray], filters: NegativeFilters,
                    lens_ra: np.ndarray, lens_dec: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean array per filter (in :data:`FILTER_ORDER`): True where the row FAILS that filter."""
    n = int(np.asarray(cols["ra"]).size)
    out: dict[str, np.ndarray] = {}
    f = filters.footprint
    dec = np.asarray(cols["dec"], dtype=np.float64)
    out["footprint"] = ~((dec > f.dec_min_deg) & (dec < f.dec_max_deg)) if f.enabled else np.zeros(n, bool)
    t = filters.type
    out["type"] = ~np.isin(_types(cols["type"]), [s.upper() for s in t.allowed]) if t.enabled else np.zeros(n, bool)
    nb = filters.nobs
    if nb.enabled:
        ok = np.ones(n, dtype=bool)
        for b in nb.bands:
            ok &= np.asarray(cols[f"nobs_{b}"], dtype=np.int64) >= nb.min
        out["nobs"] = ~ok
    else:
        out["nobs"] = np.zeros(n, bool)
    m = filters.mag
    if m.enabled:
        mag = flux_to_mag(np.asarray(cols[f"flux_{m.band}"], dtype=np.float64))
        with np.errstate(invalid="ignore"):
            out["mag"] = ~(mag < m.max)  # NaN < x is False → fails
        if m.missing_passes:
            out["mag"] &= ~np.isnan(mag)
    else:
        out["mag"] = np.zeros(n, bool)
    mb = filters.maskbits
    if mb.enabled and mb.bits:
        bad = mask_of(mb.bits)
        out["maskbits"] = (np.asarray(cols["maskbits"]).astype(np.int64) & bad) != 0
    else:
        out["maskbits"] = np.zeros(n, bool)
    kl = filters.known_lens
    out["known_lens"] = (near_any(cols["ra"], dec, lens_ra, lens_dec, kl.radius_arcsec) if kl.enabled
                         else np.zeros(n, bool))
    return out


def apply_filters(cols: Mapping[str, np.ndarray], filters: NegativeFilters, lens_ra: np.ndarray,
                  lens_dec: np.ndarray) -> tuple[np.ndarray, dict[str, int], dict[str, int]]:
    """``(keep, failed, first_failed)``: the rows passing every filter and the counts described in the
    module docstring (dicts over :data:`FILTER_ORDER`)."""
    fails = filter_failures(cols, filters, lens_ra, lens_dec)
    n = int(np.asarray(cols["ra"]).size)
    remaining = np.ones(n, dtype=bool)
    first: dict[str, int] = {}
    for name in FILTER_ORDER:
        hit = remaining & fails[name]
        first[name] = int(hit.sum())
        remaining &= ~fails[name]
    failed = {name: int(fails[name].sum()) for name in FILTER_ORDER}
    return remaining, failed, first


def positive_filters(filters: NegativeFilters, names: Sequence[str]) -> NegativeFilters:
    """The filters a matched positive must pass: those of ``filters`` named in ``names`` (the others,
    and always ``known_lens``, disabled)."""
    upd = {k: getattr(filters, k).model_copy(update={"enabled": getattr(filters, k).enabled and k in names})
           for k in FILTER_ORDER}
    upd["known_lens"] = filters.known_lens.model_copy(update={"enabled": False})
    return filters.model_copy(update=upd)


def failed_filter_names(fails: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per row, the filters it fails joined by "," in :data:`FILTER_ORDER` ("" when it passes all)."""
    names = [k for k in FILTER_ORDER if k in fails]
    n = int(np.asarray(fails[names[0]]).size) if names else 0
    out = np.full(n, "", dtype=object)
    for k in names:
        hit = np.asarray(fails[k], dtype=bool)
        out[hit] = np.where(out[hit] == "", k, out[hit] + "," + k)
    return out


def rejection_report(keys: Sequence[str], failed: Sequence[str], objects: Sequence[str] | None = None
                     ) -> dict[str, Any]:
    """Counts and list of the rows that fail filters, from the per-row ``failed`` names of
    :func:`failed_filter_names` ("" = passes): ``rejected``, ``rejected_first_filter`` (each row under its
    first failed filter), ``failed_each_filter`` and ``rows`` (``key``, ``object`` when given, ``filters``),
    sorted by key."""
    first = {k: 0 for k in FILTER_ORDER}
    each = {k: 0 for k in FILTER_ORDER}
    rows = []
    objs = list(objects) if objects is not None else [None] * len(keys)
    for key, f, obj in zip(list(keys), list(failed), objs):
        if not f:
            continue
        names = str(f).split(",")
        first[names[0]] += 1
        for nm in names:
            each[nm] += 1
        row = {"key": str(key), "filters": str(f)}
        if obj is not None:
            row["object"] = str(obj)
        rows.append(row)
    rows.sort(key=lambda r: r["key"])
    return {"rejected": len(rows), "rejected_first_filter": first, "failed_each_filter": each, "rows": rows}
