"""Per-brick pixel maps of the synthetic sky: inverse variance, MASKBITS, WISE masks, PSF size.

All maps are (size, size) arrays indexed [row, column] like the coadd images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dhs.survey.maskbits import MaskBit
from dhs.synth.objects import BrickObjects
from dhs.synth.plan import BANDS, Conditions

#: Relative amplitude of the linear gradient of the inverse variance across a brick.
INVVAR_GRADIENT = 0.06
#: WISE mask radius relative to the optical bright-star mask radius (W1; W2 uses 1.0).
WISE_W1_SCALE = 1.3
#: ALLMASK strip (no data in one band): width × length in pixels.
STRIP_SHAPE = (2, 80)
#: Radius (pixels) of the zero-PSFSIZE hole in the g-band map.
PSF_HOLE_RADIUS = 24.0


@dataclass
class BrickMaps:
    """``invvar[band]`` (float32, nanomaggy⁻²; 0 = no data), ``maskbits`` (int32 DR10 MASKBITS),
    ``wisemask_w1/_w2`` (uint8; 1 = inside the WISE bright-star mask), ``psfsize[band]`` (float32 arcsec;
    0 = no coverage, as in the DR10 maps)."""

    invvar: dict[str, np.ndarray]
    maskbits: np.ndarray
    wisemask_w1: np.ndarray
    wisemask_w2: np.ndarray
    psfsize: dict[str, np.ndarray]
    strip_band: str | None
    hole_xy: tuple[float, float] | None


def _disc(size: int, x: float, y: float, radius: float) -> np.ndarray:
    yy, xx = np.ogrid[:size, :size]
    return (xx - x) ** 2 + (yy - y) ** 2 <= radius * radius


def make_maps(objs: BrickObjects, cond: Conditions, size: int, rng: np.random.Generator,
              strip_band: str | None) -> BrickMaps:
    """Build the maps of a brick (without a PSFSIZE hole; see :func:`punch_psf_hole`).

    ``strip_band``: band whose ALLMASK strip (invvar 0, image 0) this brick gets, or None.
    """
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    invvar = {}
    for b in BANDS:
        gx, gy = rng.uniform(-1.0, 1.0, size=2)
        rel = 1.0 + INVVAR_GRADIENT * (gx * (2 * xx / (size - 1) - 1) + gy * (2 * yy / (size - 1) - 1)) / 2
        invvar[b] = (cond.pix_invvar[b] * rel).astype(np.float32)

    maskbits = np.zeros((size, size), dtype=np.int32)
    w1 = np.zeros((size, size), dtype=np.uint8)
    w2 = np.zeros((size, size), dtype=np.uint8)
    for k in np.flatnonzero(objs.mask_radius > 0):
        x, y, rad = objs.x[k], objs.y[k], objs.mask_radius[k]
        if objs.kind[k] == "bright_star":
            maskbits[_disc(size, x, y, rad)] |= 1 << MaskBit.BRIGHT
            core = _disc(size, x, y, max(3.0, 0.1 * rad))
            for bit in (MaskBit.SATUR_G, MaskBit.SATUR_R, MaskBit.SATUR_Z):
                maskbits[core] |= 1 << bit
            w2[_disc(size, x, y, rad)] = 1
        else:
            maskbits[_disc(size, x, y, rad)] |= 1 << MaskBit.MEDIUM
        w1[_disc(size, x, y, WISE_W1_SCALE * rad)] = 1
    maskbits[w1 > 0] |= 1 << MaskBit.WISEM1
    maskbits[w2 > 0] |= 1 << MaskBit.WISEM2

    if strip_band is not None:
        w, h = STRIP_SHAPE
        x0 = int(rng.integers(60, size - 60 - w))
        y0 = int(rng.integers(20, size - 20 - h))
        invvar[strip_band][y0:y0 + h, x0:x0 + w] = 0.0
        maskbits[y0:y0 + h, x0:x0 + w] |= 1 << MaskBit[f"ALLMASK_{strip_band.upper()}"]

    psfsize = {b: np.full((size, size), np.float32(cond.psfsize[b]), dtype=np.float32) for b in BANDS}
    return BrickMaps(invvar, maskbits, w1, w2, psfsize, strip_band, None)


def punch_psf_hole(maps: BrickMaps, x: float, y: float, band: str = "g",
                   radius: float = PSF_HOLE_RADIUS) -> None:
    """Set the ``band`` PSFSIZE map to 0 (no coverage) in a disc of ``radius`` pixels around (x, y)."""
    size = maps.maskbits.shape[0]
    maps.psfsize[band][_disc(size, x, y, radius)] = 0.0
    maps.hole_xy = (float(x), float(y))
