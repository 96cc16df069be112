"""Fixtures for the survey tests: a small DR10-layout coadd tree written with the real file conventions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from dhs.survey import layout
from dhs.survey.bricks import brick_by_name, brick_header
from dhs.survey.maskbits import MaskBit

SIZE = 200  # shrunk coadds, correct TAN WCS for the shrunk size


@dataclass
class CoaddTree:
    root: Path
    complete: str        # brick with every product
    partial: str         # brick without z band and without maskbits
    corrupt: str         # brick whose r image is truncated
    size: int
    psf_hole: tuple[int, int, int, int]   # (y0, y1, x0, x1) where the g psfsize map is 0


def _write_fz(path: Path, data: np.ndarray, header: fits.Header, extra: list[np.ndarray] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    hdus = [fits.PrimaryHDU(), fits.CompImageHDU(data, header=header, compression_type="RICE_1")]
    for i, e in enumerate(extra or []):
        hdus.append(fits.CompImageHDU(e, name=("WISEM1", "WISEM2")[i], compression_type="RICE_1"))
    fits.HDUList(hdus).writeto(path, overwrite=True)


def write_brick(root: Path, brickname: str, bands=("g", "r", "z"), maskbits: bool = True,
                seed: int = 0, psf_hole: tuple[int, int, int, int] | None = None) -> None:
    """Write image/invvar/psfsize per band and (optionally) maskbits for one brick (SIZE×SIZE)."""
    rng = np.random.default_rng(seed)
    hdr = brick_header(brick_by_name(brickname), size=SIZE)
    for k, b in enumerate(bands):
        ivar = np.full((SIZE, SIZE), 400.0 * (k + 1), dtype=np.float32)
        ivar[:, :10] = 0.0                     # a strip without data on the east edge
        img = (rng.normal(size=(SIZE, SIZE)) / np.sqrt(np.maximum(ivar, 1.0))).astype(np.float32)
        img[ivar == 0] = 0.0
        img[100, 100] += 5.0 * (k + 1)       # a point at the centre pixel
        psf = np.full((SIZE, SIZE), 1.2 + 0.1 * k, dtype=np.float32)
        if psf_hole is not None and b == "g":
            y0, y1, x0, x1 = psf_hole
            psf[y0:y1, x0:x1] = 0.0
        for prod, arr in (("image", img), ("invvar", ivar), ("psfsize", psf)):
            h = hdr.copy()
            h["BUNIT"] = {"image": "nanomaggy", "invvar": "1/nanomaggy^2", "psfsize": "arcsec"}[prod]
            _write_fz(Path(layout.coadd_path(str(root), brickname, prod, b)), arr, h)
    if maskbits:
        mb = np.zeros((SIZE, SIZE), dtype=np.int32)
        mb[150:170, 20:40] = (1 << MaskBit.BRIGHT) | (1 << MaskBit.WISEM1)
        mb[10:30, 150:190] = 1 << MaskBit.SATUR_R
        w1 = np.zeros((SIZE, SIZE), dtype=np.uint8)
        w1[150:170, 20:40] = 3
        w2 = np.zeros((SIZE, SIZE), dtype=np.uint8)
        w2[160:180, 30:50] = 1
        _write_fz(Path(layout.coadd_path(str(root), brickname, "maskbits")), mb, hdr.copy(), [w1, w2])


@pytest.fixture(scope="session")
def coadd_tree(tmp_path_factory) -> CoaddTree:
    root = tmp_path_factory.mktemp("coadd-tree") / "dr10"
    hole = (90, 110, 90, 110)
    write_brick(root, "0001p000", seed=1, psf_hole=hole)
    write_brick(root, "0003p000", bands=("g", "r"), maskbits=False, seed=2)
    write_brick(root, "0006p000", seed=3)
    bad = Path(layout.coadd_path(str(root), "0006p000", "image", "r"))
    raw = bad.read_bytes()
    bad.write_bytes(raw[: len(raw) // 2])
    junk = Path(layout.coadd_path(str(root), "0006p000", "psfsize", "z"))
    junk.write_bytes(b"this is not a FITS file" * 10)
    return CoaddTree(root=root, complete="0001p000", partial="0003p000", corrupt="0006p000", size=SIZE,
                     psf_hole=hole)
