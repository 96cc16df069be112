"""Small sweep files and column dicts for the stage-6 tests (DR10 column names, FITS HDU1)."""

from __future__ import annotations

from typing import Any

import numpy as np
from astropy.io import fits

from dhs.reallens.sweep_task import SWEEP_COLUMNS_6

_FORMATS = {"brickname": "8A", "type": "3A", "objid": "J", "ra": "D", "dec": "D",
            "nobs_g": "I", "nobs_r": "I", "nobs_z": "I", "maskbits": "J"}


def default_columns(n: int) -> dict[str, Any]:
    """Rows that pass every Paper IV negative filter (SER, nobs 5, z = 19, no maskbits, Dec 0)."""
    return {
        "brickname": np.full(n, "0001p000"), "objid": np.arange(n, dtype=np.int32),
        "ra": np.full(n, 10.0), "dec": np.zeros(n), "type": np.full(n, "SER"),
        "flux_g": np.full(n, 2.0), "flux_r": np.full(n, 4.0), "flux_z": np.full(n, 10.0 ** (-0.4 * (19.0 - 22.5))),
        "flux_w1": np.full(n, 8.0), "nobs_g": np.full(n, 5), "nobs_r": np.full(n, 5), "nobs_z": np.full(n, 5),
        "maskbits": np.zeros(n, dtype=np.int32), "shape_r": np.full(n, 1.0), "shape_e1": np.zeros(n),
        "shape_e2": np.zeros(n), "sersic": np.full(n, 2.0), "psfsize_g": np.full(n, 1.3),
        "psfsize_r": np.full(n, 1.2), "psfsize_z": np.full(n, 1.1), "psfdepth_g": np.full(n, 1000.0),
        "psfdepth_r": np.full(n, 500.0), "psfdepth_z": np.full(n, 100.0), "ebv": np.full(n, 0.02),
    }


def write_sweep(path: str, cols: dict[str, Any]) -> str:
    """Write ``cols`` (lower-case names, every column of SWEEP_COLUMNS_6) as a sweep FITS file."""
    fcols = []
    for c in SWEEP_COLUMNS_6:
        v = np.asarray(cols[c])
        fmt = _FORMATS.get(c, "E")
        fcols.append(fits.Column(name=c.upper(), format=fmt, array=v))
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(fcols)]).writeto(path, overwrite=True)
    return path
