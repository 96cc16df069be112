"""A tiny DR10-layout coadd brick written in the test (no dependency on the synthetic-sky builder).

One brick, ``size`` × ``size`` pixels with the DR10 TAN WCS rule, compressed ``.fits.fz`` files with data
in HDU1: per band a Gaussian-noise image with a smooth host galaxy, a constant invvar and a psfsize map;
a maskbits file with a BRIGHT box and a WISE box (HDU2/3 WISEMASK_W1/W2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
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


MANIFEST_TYPES = {
    "task_id": pa.string(), "task_seed": pa.int64(), "experiment_id": pa.string(), "galaxy_id": pa.string(),
    "brickname": pa.string(), "ra": pa.float64(), "dec": pa.float64(), "region_split": pa.string(),
    "is_control": pa.int32(), "control_of": pa.string(), "config_id": pa.string(), "lens_model": pa.string(),
    "theta_e_arcsec": pa.float64(), "lens_e1": pa.float64(), "lens_e2": pa.float64(), "gamma1": pa.float64(),
    "gamma2": pa.float64(), "src_x_arcsec": pa.float64(), "src_y_arcsec": pa.float64(),
    "src_reff_arcsec": pa.float64(), "src_n_sersic": pa.float64(), "src_e1": pa.float64(),
    "src_e2": pa.float64(), "src_dmag": pa.float64(), "src_mag_r": pa.float64(), "src_gr": pa.float64(),
    "src_rz": pa.float64(), "source_mode": pa.string(), "cosmos_index": pa.int64(), "psf_bin": pa.int32(),
    "depth_bin": pa.int32(), "stamp_size": pa.int32(), "psfsize_g": pa.float64(), "psfsize_r": pa.float64(),
    "psfsize_z": pa.float64(), "target_snr": pa.float64(), "target_snr_metric": pa.string(),
    "src_mag_g": pa.float64(),
    "src_mag_z": pa.float64(), "src_hlr_target_arcsec": pa.float64(),
}
MANIFEST_SCHEMA = pa.schema(list(MANIFEST_TYPES.items()))


def make_row(wcs, x: float = 80.3, y: float = 79.8, **kw) -> dict:
    """A manifest row for a host at pixel (x, y) of the tiny brick (SIE + Sersic defaults)."""
    ra, dec = radec(wcs, x, y)
    row = {k: None for k in MANIFEST_TYPES}
    row.update(task_id="t0", task_seed=1234567890123, experiment_id="test", galaxy_id=f"{BRICK}_1",
               brickname=BRICK, ra=ra, dec=dec, region_split="train", is_control=0, config_id="c0",
               lens_model="SIE", theta_e_arcsec=1.2, lens_e1=0.1, lens_e2=-0.05, gamma1=0.02, gamma2=-0.01,
               src_x_arcsec=0.1, src_y_arcsec=0.05, src_reff_arcsec=0.15, src_n_sersic=1.0, src_e1=0.1,
               src_e2=0.0, src_dmag=1.0, src_mag_r=21.0, src_gr=1.15, src_rz=0.85, source_mode="sersic",
               cosmos_index=-1, psf_bin=0, depth_bin=0, stamp_size=64, psfsize_g=1.45, psfsize_r=1.25,
               psfsize_z=1.15)
    row.update(kw)
    return row
