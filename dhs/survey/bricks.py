"""Legacy Surveys bricks: name, id, centre, bounds and the coadd TAN WCS.

All geometry comes from :class:`desiutil.brick.Bricks` with 0.25° bricks (the rule used by every Legacy
Surveys data release). Angles are in degrees. A brick name (e.g. ``3572m307``) is *not* inverted
arithmetically into a centre: :func:`brick_by_name` finds the brick whose name it is and checks the
answer against desiutil.

Coadd WCS rule (DR10): TAN projection, ``CRVAL`` = brick centre, ``CRPIX`` = (size+1)/2 (1800.5 for
3600 pixels), ``CD = diag(-pixscale/3600, +pixscale/3600)`` deg/pixel, so the column index grows toward
lower RA and the row index toward higher Dec.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from desiutil.brick import Bricks

BRICKSIZE_DEG = 0.25
PIXSCALE_ARCSEC = 0.262
COADD_SIZE_PIX = 3600

#: A brick name as used in paths: 4 digits of RA·10, ``p``/``m``, 3 digits of |Dec|·10.
BRICKNAME_RE = re.compile(r"^\d{4}[pm]\d{3}$")


@lru_cache(maxsize=1)
def _bricks() -> Bricks:
    """The shared desiutil brick tiling (0.25° bricks); built once per process (~1 s)."""
    return Bricks(bricksize=BRICKSIZE_DEG)


@dataclass(frozen=True)
class Brick:
    """One brick. ``ra``/``dec`` is the centre, ``ra1..ra2`` × ``dec1..dec2`` the bounds (degrees)."""

    brickname: str
    brickid: int
    ra: float
    dec: float
    ra1: float
    ra2: float
    dec1: float
    dec2: float
    brickrow: int
    brickcol: int

    @property
    def area_deg2(self) -> float:
        """Area of the brick's RA/Dec rectangle on the sphere, square degrees."""
        dsin = math.sin(math.radians(self.dec2)) - math.sin(math.radians(self.dec1))
        return (self.ra2 - self.ra1) * math.degrees(dsin)

    @property
    def brickq(self) -> int:
        """BRICKQ (0–3) as in survey-bricks.fits: (col % 2) + 2·(row % 2); 1 for the south-pole brick."""
        if self.brickrow == 0:
            return 1
        return (self.brickcol % 2) + (self.brickrow % 2) * 2

    def contains(self, ra: float, dec: float) -> bool:
        """True if (ra, dec) [deg] lies inside this brick's unique area (lower bounds inclusive)."""
        r = float(ra) % 360.0
        return (self.ra1 <= r < self.ra2 or (self.ra2 == 360.0 and r == 360.0)) and (
            self.dec1 <= dec < self.dec2 or (self.dec2 == 90.0 and dec == 90.0)
        )


def validate_brickname(name: object) -> str:
    """Return ``name`` if it is a well-formed brick name (``^\\d{4}[pm]\\d{3}$``), else ValueError."""
    if not isinstance(name, str) or not BRICKNAME_RE.match(name):
        raise ValueError(
            f"invalid brick name {name!r}: expected 4 digits, 'p' or 'm', 3 digits (e.g. '3572m307')"
        )
    return name


def _bricks_arrays(ra: np.ndarray, dec: np.ndarray) -> dict[str, np.ndarray]:
    """Vectorised brick properties for positions (deg) via desiutil."""
    b = _bricks()
    ra = np.atleast_1d(np.asarray(ra, dtype=np.float64)) % 360.0
    dec = np.atleast_1d(np.asarray(dec, dtype=np.float64))
    if ra.shape != dec.shape:
        raise ValueError(f"ra and dec must have the same shape, got {ra.shape} and {dec.shape}")
    if not (np.all(np.isfinite(ra)) and np.all(np.isfinite(dec))):
        raise ValueError("ra/dec must be finite")
    if np.any(np.abs(dec) > 90.0):
        raise ValueError(f"dec outside [-90, 90]: {dec[np.abs(dec) > 90.0][:5]}")
    names = np.asarray(b.brickname(ra, dec), dtype="U8")
    ids = np.asarray(b.brickid(ra, dec), dtype=np.int64)
    cra, cdec = b.brick_radec(ra, dec)
    verts = np.asarray(b.brickvertices(ra, dec)).reshape(len(ra), 4, 2)
    ra1, dec1 = verts[:, 0, 0], verts[:, 0, 1]
    ra2, dec2 = verts[:, 2, 0], verts[:, 2, 1]
    row = np.rint((np.asarray(cdec) + 90.0) / BRICKSIZE_DEG).astype(np.int64)
    ncol = np.rint(360.0 / (ra2 - ra1)).astype(np.int64)
    col = np.rint(ra1 * ncol / 360.0).astype(np.int64)
    return {
        "brickname": names, "brickid": ids, "ra": np.asarray(cra, dtype=np.float64),
        "dec": np.asarray(cdec, dtype=np.float64), "ra1": ra1, "ra2": ra2, "dec1": dec1, "dec2": dec2,
        "brickrow": row, "brickcol": col,
    }


def bricks_at(ra: np.ndarray, dec: np.ndarray) -> dict[str, np.ndarray]:
    """Brick columns (brickname, brickid, ra, dec, ra1, ra2, dec1, dec2, brickrow, brickcol) for
    arrays of positions in degrees; each value is an array of the input length."""
    return _bricks_arrays(ra, dec)


def brick_at(ra: float, dec: float) -> Brick:
    """The brick containing (ra, dec) [deg]."""
    a = _bricks_arrays(np.array([ra]), np.array([dec]))
    return Brick(
        brickname=str(a["brickname"][0]), brickid=int(a["brickid"][0]), ra=float(a["ra"][0]),
        dec=float(a["dec"][0]), ra1=float(a["ra1"][0]), ra2=float(a["ra2"][0]), dec1=float(a["dec1"][0]),
        dec2=float(a["dec2"][0]), brickrow=int(a["brickrow"][0]), brickcol=int(a["brickcol"][0]),
    )


def bricknames_at(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Brick names (``<U8`` array) for arrays of positions in degrees."""
    return _bricks_arrays(ra, dec)["brickname"]


@lru_cache(maxsize=65536)
def brick_by_name(name: str) -> Brick:
    """Look up a brick by its name; KeyError if no 0.25° brick has that name.

    The name fixes the brick row (a 0.1°-wide Dec interval contains at most one row centre, which lie on
    multiples of 0.25°) and a 0.1°-wide RA interval containing the brick centre; as bricks are ≥ 0.25°
    wide, the whole interval lies in that one brick. The brick found there is returned only if
    desiutil gives it exactly this name.
    """
    validate_brickname(name)
    ra_tenths = int(name[0:4])
    sign = 1.0 if name[4] == "p" else -1.0
    dec_tenths = int(name[5:8])
    # Row centres are k·0.25°; pick the one whose |dec|·10 truncates to dec_tenths.
    candidates = [k * BRICKSIZE_DEG for k in range(361)
                  if round(k * BRICKSIZE_DEG * 10000) // 1000 == dec_tenths]
    for adec in candidates:
        dec = sign * adec
        if dec > 90.0:
            continue
        brick = brick_at(min(ra_tenths / 10.0 + 0.05, 359.99), dec)
        if brick.brickname == name:
            return brick
    raise KeyError(f"no brick named {name!r} in the 0.25° Legacy Surveys tiling")


def _as_brick(brick: Brick | str) -> Brick:
    return brick if isinstance(brick, Brick) else brick_by_name(brick)


def brick_header(brick: Brick | str, size: int = COADD_SIZE_PIX,
                 pixscale: float = PIXSCALE_ARCSEC) -> fits.Header:
    """FITS header cards of the brick's coadd TAN WCS (CD-matrix form, as in Legacy Surveys coadds).

    ``size``: image side in pixels; ``pixscale``: arcsec/pixel.
    """
    b = _as_brick(brick)
    if size <= 0:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    if pixscale <= 0:
        raise ValueError(f"pixscale must be positive arcsec/pixel, got {pixscale}")
    h = fits.Header()
    h["CTYPE1"] = "RA---TAN"
    h["CTYPE2"] = "DEC--TAN"
    h["CRVAL1"] = b.ra
    h["CRVAL2"] = b.dec
    h["CRPIX1"] = (size + 1) / 2.0
    h["CRPIX2"] = (size + 1) / 2.0
    h["CD1_1"] = -pixscale / 3600.0
    h["CD1_2"] = 0.0
    h["CD2_1"] = 0.0
    h["CD2_2"] = pixscale / 3600.0
    h["IMAGEW"] = float(size)
    h["IMAGEH"] = float(size)
    h["BRICKNAM"] = b.brickname
    return h


def brick_wcs(brick: Brick | str, size: int = COADD_SIZE_PIX, pixscale: float = PIXSCALE_ARCSEC) -> WCS:
    """The brick's coadd TAN WCS by the DR10 rule (astropy; pixel_shape = (size, size)).

    ``size``: image side in pixels (3600 for real coadds); ``pixscale``: arcsec/pixel (0.262).
    """
    h = brick_header(brick, size=size, pixscale=pixscale)
    w = WCS(h)
    w.pixel_shape = (size, size)
    return w
