"""Catalogue galaxy shapes (Tractor, on the sky) in the stamp's lens-plane frame (lenstronomy conventions).

Tractor's ``SHAPE_R`` is the half-light radius (arcsec) along the *major* axis; ``SHAPE_E1/E2`` are
ellipticity components with |e| = (1 − q)/(1 + q) and the major axis at position angle
θ = ½·atan2(e2, e1) East of North. The stamp frame (docs/conventions.md) has x along columns, which on a DR10
coadd (CD1_1 < 0) points West, and y along rows, pointing North. A direction at position angle θ therefore
lies at φ = θ + 90° from +x (counter-clockwise), and lenstronomy's (e1, e2) = |e|·(cos 2φ, sin 2φ) =
−(SHAPE_E1, SHAPE_E2). lenstronomy's ``R_sersic`` is measured along the intermediate axis √(ab), so
``R_sersic = SHAPE_R · √q``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def catalogue_shape_to_stamp_frame(
    shape_r: ArrayLike, shape_e1: ArrayLike, shape_e2: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(``R_sersic`` arcsec, e1, e2) in the stamp frame from Tractor ``SHAPE_R`` (arcsec), ``SHAPE_E1/E2``.

    Vectorised; NaN inputs give NaN outputs; |e| ≥ 1 is invalid and gives NaN.
    """
    r = np.asarray(shape_r, dtype=np.float64)
    e1 = np.asarray(shape_e1, dtype=np.float64)
    e2 = np.asarray(shape_e2, dtype=np.float64)
    e = np.hypot(e1, e2)
    valid = e < 1.0
    q = np.where(valid, (1.0 - e) / (1.0 + e), np.nan)
    return r * np.sqrt(q), np.where(valid, -e1, np.nan), np.where(valid, -e2, np.nan)
