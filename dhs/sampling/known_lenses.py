"""Known-lens exclusion: drop injection hosts and controls that lie near a known strong lens.

Catalogues: a user file (CSV, TSV, whitespace table with a ``#`` header line, or FITS) with RA/Dec columns in
degrees, or the community catalogue of the PyPI package ``lenscat`` when it is installed (no network access
is ever needed: the package ships its table). Tables are read by :mod:`dhs.io.lens_tables`.
"""

from __future__ import annotations

import os

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord

from dhs.io.lens_tables import (
    LensTableError,
    LensTableKeys,
    lenscat_available,
    lenscat_table,
    read_lens_table,
)

__all__ = ["KnownLensError", "lenscat_available", "lenscat_lenses", "near_known_lens", "read_known_lenses"]

#: A known-lens catalogue cannot be used; the message names the file, row and column.
KnownLensError = LensTableError

_KEYS = LensTableKeys(catalog="stage4a.known_lenses.catalog", columns=None,
                      lenscat="stage4a.known_lenses.use_lenscat")


def read_known_lenses(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """RA, Dec (deg, float64) of the lenses in a CSV/TSV/whitespace/FITS table (format from the extension,
    see :func:`dhs.io.lens_tables.read_lens_table`)."""
    t = read_lens_table(path, keys=_KEYS)
    return t.ra, t.dec


def lenscat_lenses() -> tuple[np.ndarray, np.ndarray]:
    """RA, Dec (deg) of the lenses in ``lenscat.catalog`` (raises KnownLensError if not installed)."""
    t = lenscat_table(keys=_KEYS)
    return t.ra, t.dec


def near_known_lens(ra: np.ndarray, dec: np.ndarray, lens_ra: np.ndarray, lens_dec: np.ndarray,
                    radius_arcsec: float) -> np.ndarray:
    """Boolean mask: True where (ra, dec) (deg) lies within ``radius_arcsec`` of any known lens."""
    ra = np.asarray(ra, dtype=np.float64)
    out = np.zeros(ra.shape, dtype=bool)
    if ra.size == 0 or np.asarray(lens_ra).size == 0:
        return out
    hosts = SkyCoord(ra * u.deg, np.asarray(dec, dtype=np.float64) * u.deg)
    lenses = SkyCoord(np.asarray(lens_ra, dtype=np.float64) * u.deg, np.asarray(lens_dec, dtype=np.float64) * u.deg)
    _, sep, _ = hosts.match_to_catalog_sky(lenses)
    return np.asarray(sep.to_value(u.arcsec) <= radius_arcsec)
