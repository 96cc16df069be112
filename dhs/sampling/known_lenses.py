"""Known-lens exclusion: drop injection hosts and controls that lie near a known strong lens.

Catalogues: a user file (CSV, TSV, whitespace table with a ``#`` header line, or FITS) with RA/Dec columns in
degrees, or the community catalogue of the PyPI package ``lenscat`` when it is installed (no network access
is ever needed: the package ships its table).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord

RA_NAMES = ("ra", "ra_deg", "raj2000", "ra_j2000", "radeg", "alpha")
DEC_NAMES = ("dec", "dec_deg", "dej2000", "decj2000", "dec_j2000", "decdeg", "delta")


class KnownLensError(ValueError):
    """A known-lens catalogue cannot be used; the message names the file and column."""


def _pick(names: Sequence[str], wanted: Sequence[str], path: str, what: str) -> str:
    lower = {n.lower(): n for n in names}
    for w in wanted:
        if w in lower:
            return lower[w]
    raise KnownLensError(f"{path}: no {what} column; expected one of {list(wanted)} (case-insensitive), "
                         f"found {list(names)}")


def _check_coords(ra: np.ndarray, dec: np.ndarray, path: str) -> tuple[np.ndarray, np.ndarray]:
    ra = np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    bad = ~(np.isfinite(ra) & np.isfinite(dec) & (dec >= -90) & (dec <= 90))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise KnownLensError(f"{path}: row {i}: RA/Dec ({ra[i]}, {dec[i]}) is not a valid position in degrees")
    return np.mod(ra, 360.0), dec


def read_known_lenses(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """RA, Dec (deg) of the lenses in a CSV/TSV/whitespace/FITS table.

    The format is taken from the extension (``.fits``, ``.fit``, ``.fits.gz`` → FITS; ``.csv`` → comma;
    ``.tsv`` → tab; anything else → whitespace with a ``#``-prefixed header line, as in SLACS tables).
    """
    from astropy.io import ascii as ascii_io
    from astropy.table import Table

    p = str(path)
    if not os.path.isfile(p):
        raise KnownLensError(f"known-lens catalogue not found: {p}")
    low = p.lower()
    try:
        if low.endswith((".fits", ".fit", ".fits.gz", ".fit.gz")):
            t = Table.read(p, hdu=1)
        elif low.endswith(".csv"):
            t = ascii_io.read(p, format="csv")
        elif low.endswith(".tsv"):
            t = ascii_io.read(p, format="tab")
        else:
            with open(p) as fh:
                first = fh.readline()
            if first.startswith("#"):
                names = first.lstrip("#").split()
                t = ascii_io.read(p, format="no_header", names=names, comment="#")
            else:
                t = ascii_io.read(p, format="basic")
    except Exception as exc:  # astropy raises several types for unreadable tables
        raise KnownLensError(f"{p}: cannot read known-lens table: {exc}") from exc
    ra_col = _pick(t.colnames, RA_NAMES, p, "RA")
    dec_col = _pick(t.colnames, DEC_NAMES, p, "Dec")
    return _check_coords(np.asarray(t[ra_col]), np.asarray(t[dec_col]), p)


def lenscat_available() -> bool:
    """True when the optional ``lenscat`` package can be imported."""
    try:
        import lenscat  # noqa: F401
    except ImportError:
        return False
    return True


def lenscat_lenses() -> tuple[np.ndarray, np.ndarray]:
    """RA, Dec (deg) of the lenses in ``lenscat.catalog`` (raises KnownLensError if not installed)."""
    try:
        import lenscat
    except ImportError as exc:
        raise KnownLensError("stage4a.known_lenses.use_lenscat: the package 'lenscat' is not installed "
                             "(pip install lenscat) — or give a catalogue file in known_lenses.catalog") from exc
    cat = lenscat.catalog
    ra_col = _pick(cat.colnames, RA_NAMES, "lenscat.catalog", "RA")
    dec_col = _pick(cat.colnames, DEC_NAMES, "lenscat.catalog", "Dec")
    return _check_coords(np.asarray(cat[ra_col], dtype=np.float64), np.asarray(cat[dec_col], dtype=np.float64),
                         "lenscat.catalog")


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
