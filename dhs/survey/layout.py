"""DR10 file layout under a survey root (a local directory or ``s3://bucket/prefix``).

::

    <root>/sweep/10.1/sweep-<AAA>{p|m}<BBB>-<CCC>{p|m}<DDD>.fits
    <root>/coadd/<AAA>/<brick>/legacysurvey-<brick>-{image,invvar,psfsize}-{g,r,z}.fits.fz
    <root>/coadd/<AAA>/<brick>/legacysurvey-<brick>-maskbits.fits.fz
    <root>/survey-bricks-dr10-south.fits.gz

Brick names are validated before any path is built, so a malformed name can never escape the layout.
"""

from __future__ import annotations

import math

from dhs.io.paths import join
from dhs.survey.bricks import validate_brickname

SWEEP_VERSION = "10.1"
SWEEP_TILE_DEG = 5.0
BANDS: tuple[str, ...] = ("g", "r", "z")
BANDED_PRODUCTS: tuple[str, ...] = ("image", "invvar", "psfsize")
PRODUCTS: tuple[str, ...] = ("image", "invvar", "maskbits", "psfsize")
BRICK_SUMMARY_NAME = "survey-bricks-dr10-south.fits.gz"


def sweep_dir(root: str) -> str:
    """Folder of the DR10 sweep files."""
    return join(root, "sweep", SWEEP_VERSION)


def sweep_glob(root: str) -> str:
    """Glob pattern matching every sweep file under ``root`` (``<root>/sweep/10.1/sweep-*.fits``)."""
    return join(sweep_dir(root), "sweep-*.fits")


def _tile_corner(value: float) -> str:
    sign = "p" if value >= 0 else "m"
    return f"{sign}{round(abs(value)):03d}"


def sweep_name(ra: float, dec: float, tile_deg: float = SWEEP_TILE_DEG) -> str:
    """File name of the sweep tile (``tile_deg`` degrees square) containing (ra, dec) [deg],
    e.g. ``sweep-000m005-005p000.fits``."""
    ra = float(ra) % 360.0
    ra_lo = math.floor(ra / tile_deg) * tile_deg
    dec_lo = math.floor(float(dec) / tile_deg) * tile_deg
    ra_hi, dec_hi = ra_lo + tile_deg, dec_lo + tile_deg
    return (f"sweep-{round(ra_lo):03d}{_tile_corner(dec_lo)}-"
            f"{round(ra_hi):03d}{_tile_corner(dec_hi)}.fits")


def sweep_path(root: str, ra: float, dec: float, tile_deg: float = SWEEP_TILE_DEG) -> str:
    """Full path of the sweep file holding (ra, dec) [deg]."""
    return join(sweep_dir(root), sweep_name(ra, dec, tile_deg))


def coadd_dir(root: str, brickname: str) -> str:
    """``<root>/coadd/<AAA>/<brick>``."""
    validate_brickname(brickname)
    return join(root, "coadd", brickname[:3], brickname)


def coadd_filename(brickname: str, product: str, band: str | None = None) -> str:
    """``legacysurvey-<brick>-<product>[-<band>].fits.fz`` (maskbits has no band)."""
    validate_brickname(brickname)
    if product not in PRODUCTS:
        raise ValueError(f"unknown coadd product {product!r}; expected one of {PRODUCTS}")
    if product == "maskbits":
        if band is not None:
            raise ValueError("the maskbits product has no band; pass band=None")
        return f"legacysurvey-{brickname}-maskbits.fits.fz"
    if band not in BANDS:
        raise ValueError(f"coadd product {product!r} needs a band in {BANDS}, got {band!r}")
    return f"legacysurvey-{brickname}-{product}-{band}.fits.fz"


def coadd_path(root: str, brickname: str, product: str, band: str | None = None) -> str:
    """Path of one coadd file. ``product`` ∈ {image, invvar, maskbits, psfsize}; band ∈ {g, r, z} for
    all but maskbits."""
    return join(coadd_dir(root, brickname), coadd_filename(brickname, product, band))


def brick_summary_path(root: str) -> str:
    """Path of the per-brick summary table (``survey-bricks-dr10-south.fits.gz``)."""
    return join(root, BRICK_SUMMARY_NAME)
