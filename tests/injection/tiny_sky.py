"""A tiny DR10-layout coadd brick written in the test (no dependency on the synthetic-sky builder).

One brick, ``size`` × ``size`` pixels with the DR10 TAN WCS rule, compressed ``.fits.fz`` files with data
in HDU1: per band a Gaussian-noise image with a smooth host galaxy, a constant invvar and a psfsize map;
a maskbits file with a BRIGHT box and a WISE box (HDU2/3 WISEMASK_W1/W2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from dhs.survey.bricks import brick_header
from dhs.survey.layout import coadd_path
from dhs.survey.maskbits import MaskBit

BRICK = "0001p000"
BANDS = ("g", "r", "z")
PSFSIZE = {"g": 1.5, "r": 1.3, "z": 1.2}
INVVAR = {"g": 400.0, "r": 250.0, "z": 60.0}      # 1/nanomaggy²


def write_brick(root: str | Path, brick: str = BRICK, size: int = 160, seed: int = 0,
                psf_hole_g: tuple[slice, slice] | None = None) -> WCS:
    """Write the brick under ``root``; returns its WCS. ``psf_hole_g`` zeroes part of the g psfsize map."""
    root = str(root)
    hdr = brick_header(brick, size=size)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    host = 5.0 * np.exp(-0.5 * ((xx - size / 2) ** 2 + (yy - size / 2) ** 2) / 3.0**2)
    for band in BANDS:
        sigma = 1.0 / np.sqrt(INVVAR[band])
        img = (host + rng.normal(0.0, sigma, (size, size))).astype(np.float32)
        iv = np.full((size, size), INVVAR[band], dtype=np.float32)
        psf = np.full((size, size), PSFSIZE[band], dtype=np.float32)
        if band == "g" and psf_hole_g is not None:
            psf[psf_hole_g] = 0.0
        for product, data in (("image", img), ("invvar", iv), ("psfsize", psf)):
            path = Path(coadd_path(root, brick, product, band))
            path.parent.mkdir(parents=True, exist_ok=True)
            fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header=hdr.copy())]).writeto(path)
    mb = np.zeros((size, size), dtype=np.int32)
    mb[10:20, 10:20] |= 1 << MaskBit.BRIGHT
    w1 = np.zeros((size, size), dtype=np.int16)
    w1[100:130, 100:130] = 1
    mb[100:130, 100:130] |= 1 << MaskBit.WISEM1
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(mb, header=hdr.copy()),
                  fits.CompImageHDU(w1, header=hdr.copy()), fits.CompImageHDU(np.zeros_like(w1), header=hdr.copy())]
                 ).writeto(coadd_path(root, brick, "maskbits"))
    return WCS(hdr, naxis=2)


def radec(wcs: WCS, x: float, y: float) -> tuple[float, float]:
    """(ra, dec) in degrees of 0-based pixel (x = column, y = row)."""
    ra, dec = wcs.all_pix2world(x, y, 0)
    return float(ra), float(dec)
