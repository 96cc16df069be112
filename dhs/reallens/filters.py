"""Paper IV negative-pool filters on sweep rows, each configurable (``stage6.filters``).

In order: ``footprint`` (dec_min < Dec < dec_max, strict), ``type`` (TYPE in the allowed list), ``nobs``
(NOBS_<band> ≥ min in each band), ``mag`` (mag_<band> < max; NaN magnitude — flux ≤ 0 or NaN — fails),
``maskbits`` (none of the listed bits set), ``known_lens`` (no known lens within the radius, arcsec).
A disabled filter passes every row. Counts are reported two ways: ``failed`` (rows failing each filter on its
own; overlaps counted in every filter they fail) and ``first_failed`` (each rejected row counted once, under
the first filter it fails, so ``rows = kept + Σ first_failed``).
"""

from __future__ import annotations

from collections.abc import Mapping
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
