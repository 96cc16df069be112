"""Singular isothermal ellipsoid (SIE) plus external shear, in lenstronomy's conventions.

All angles are arcseconds in the lens plane, measured from the lens centre, with x along stamp columns
and y along stamp rows.  The SIE is the Keeton & Kochanek (1998) profile with lenstronomy's
normalisation: ``theta_e`` is the radius whose enclosed mean convergence is 1 (the "product averaged"
Einstein radius), so the major-axis critical radius is ``b = theta_e * sqrt(q)``.  Ellipticity follows
lenstronomy's ``e1, e2``: ``phi = atan2(e2, e1) / 2`` and ``q = (1 - |e|) / (1 + |e|)``.

The hot path keeps float32 inputs in float32: every scalar combined with an array is a Python float
(NumPy 2 would otherwise promote float32 arrays to float64).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .rows import RowTable, points_major
from .scratch import scratch_array

__all__ = [
    "LensBatch",
    "SIELens",
    "ellipticity_to_phi_q",
    "max_sie_deflection",
    "max_sie_deflections",
    "ray_shoot_grid",
    "sie_shear_deflection",
]

#: lenstronomy caps |e| so that q stays positive; we use the same cap.
_MAX_ELLIPTICITY = 0.9999
#: below this |e| the SIE is evaluated as the exactly round SIS (avoids 0/0 in the q -> 1 limit).
_ROUND_ELLIPTICITY = 1e-9
#: lenstronomy's SIE is its NIE with s_scale = 1e-10 arcsec (core s = s_scale / sqrt(q) on the major axis);
#: we use the same core, so the deflections agree at every radius (it changes alpha by ~1e-10 / r relative:
#: nothing beyond a few milliarcsec of the centre, and it makes the centre itself regular)
_CORE_ARCSEC = 1e-10


def ellipticity_to_phi_q(e1: float, e2: float) -> tuple[float, float]:
    """Convert lenstronomy ellipticity components to (position angle [rad], axis ratio q = b/a)."""
    e1 = float(e1)
    e2 = float(e2)
    phi = 0.5 * math.atan2(e2, e1)
    c = min(math.hypot(e1, e2), _MAX_ELLIPTICITY)
    return phi, (1.0 - c) / (1.0 + c)


@dataclass(frozen=True)
class SIELens:
    """SIE + external shear lens.

    Attributes:
        theta_e: Einstein radius, arcsec (lenstronomy ``theta_E``); 0 means no lens.
        e1, e2: lenstronomy ellipticity components of the mass distribution (dimensionless).
        gamma1, gamma2: external shear components (lenstronomy ``SHEAR``).
    """

    theta_e: float
    e1: float = 0.0
    e2: float = 0.0
    gamma1: float = 0.0
    gamma2: float = 0.0

    def __post_init__(self) -> None:
        for name in ("theta_e", "e1", "e2", "gamma1", "gamma2"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value):
                raise ValueError(f"SIELens.{name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.theta_e < 0:
            raise ValueError(f"SIELens.theta_e must be >= 0 arcsec, got {self.theta_e!r}")
        if math.hypot(self.e1, self.e2) >= 1.0:
            raise ValueError(
                f"SIELens ellipticity |e| = hypot(e1, e2) must be < 1, got e1={self.e1}, e2={self.e2}"
            )
        if math.hypot(self.gamma1, self.gamma2) >= 0.9:
            raise ValueError(
                f"SIELens shear |gamma| must be < 0.9, got gamma1={self.gamma1}, gamma2={self.gamma2}"
            )

    def deflection(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Deflection (alpha_x, alpha_y) in arcsec at lens-plane positions x, y (arcsec from the centre)."""
        return sie_shear_deflection(x, y, self.theta_e, self.e1, self.e2, self.gamma1, self.gamma2)

    def ray_shoot(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Source-plane positions beta = theta - alpha(theta), arcsec, same dtype as the inputs."""
        ax, ay = self.deflection(x, y)
        if np.ndim(ax) == 0:
            return np.float64(x) - ax, np.float64(y) - ay
        np.subtract(x, ax, out=ax)
        np.subtract(y, ay, out=ay)
        return ax, ay


#: the largest value below 1 per float type (the arctanh argument's clip)
_BELOW_ONE = {t: float(np.nextafter(t(1.0), t(0.0))) for t in (np.float32, np.float64)}


def _sie_unit_frame(xr: np.ndarray, yr: np.ndarray, q2, eps, s, work: np.ndarray | None = None, q2ss=None):
    """The SIE deflection in the frame whose x axis is the major axis, over its scale (in place).

    Keeton-Kochanek with lenstronomy's core: alpha_x = (b / e) arctan(e x / (psi + s)),
    alpha_y = (b / e) arctanh(e y / (psi + q^2 s)), e = sqrt(1 - q^2), psi = sqrt(q^2 (x^2 + s^2) + y^2),
    s = 1e-10" / sqrt(q).  Overwrites ``xr``, ``yr`` (arcsec, major-axis frame) with alpha / (b / e) and
    returns them.  ``eps`` None selects the exactly round SIS, alpha = b (x, y) / (r + s), returned over b.
    q2 = q^2, eps and s are Python floats (one lens) or arrays broadcasting against xr (one lens per row);
    ``q2ss``: q2 s^2 when the caller has it.
    In float32 the core enters through psi only: s / psi is below float32 resolution wherever
    psi > ~2 milliarcsec, and psi >= sqrt(q) 1e-10" keeps the centre regular.
    """
    dtype = xr.dtype
    exact = dtype == np.float64
    psi = np.multiply(xr, xr, out=work)
    if eps is not None:
        psi *= q2
    t = np.multiply(yr, yr)
    psi += t
    psi += (np.multiply(q2, s * s) if q2ss is None else q2ss) if eps is not None else s * s
    np.sqrt(psi, out=psi)
    if eps is None:
        if exact:
            psi += s
        np.divide(1.0, psi, out=psi)
        xr *= psi
        yr *= psi
        return xr, yr
    if exact:
        np.divide(xr, np.add(psi, s, out=t), out=xr)
        xr *= eps
        np.divide(yr, np.add(psi, np.multiply(q2, s), out=t), out=yr)
        yr *= eps
    else:
        inv = np.divide(eps, psi, out=psi)
        xr *= inv
        yr *= inv
    np.arctan(xr, out=xr)
    # |eps * y / psi| <= eps < 1 analytically; clip guards against rounding at the last ulp.
    lim = _BELOW_ONE[dtype.type]
    np.clip(yr, -lim, lim, out=yr)
    np.arctanh(yr, out=yr)
    return xr, yr


def _sie_frame_constants(theta_e: float, e1: float, e2: float) -> tuple[float, float, float, float | None, float]:
    """(cos phi, sin phi, q^2, eps or None for a round lens, scale b/eps or b) of an SIE (theta_e > 0)."""
    phi, q = ellipticity_to_phi_q(e1, e2)
    c = (1.0 - q) / (1.0 + q)
    b = theta_e * math.sqrt(q)
    if c < _ROUND_ELLIPTICITY:
        return math.cos(phi), math.sin(phi), q * q, None, b
    one_minus_q = 2.0 * c / (1.0 + c)
    eps = math.sqrt(one_minus_q * (1.0 + q))  # sqrt(1 - q^2), accurate as q -> 1
    return math.cos(phi), math.sin(phi), q * q, eps, b / eps


def sie_shear_deflection(
    x: np.ndarray,
    y: np.ndarray,
    theta_e: float,
    e1: float,
    e2: float,
    gamma1: float = 0.0,
    gamma2: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Deflection of an SIE plus external shear (lenstronomy ``['SIE', 'SHEAR']``).

    Args:
        x, y: lens-plane positions relative to the lens centre, arcsec (arrays of equal shape;
            float32 inputs give float32 outputs, anything else float64).
        theta_e: Einstein radius, arcsec (enclosed mean convergence 1).
        e1, e2: ellipticity components; q = (1 - |e|) / (1 + |e|), phi = atan2(e2, e1) / 2.
        gamma1, gamma2: external shear; its deflection is (g1 x + g2 y, g2 x - g1 y).

    Returns:
        (alpha_x, alpha_y) in arcsec, with the broadcast shape of x and y (scalars for scalar input).
        Finite everywhere, including the lens centre (where the SIE part is 0) and the round limit
        q -> 1.  The SIE carries lenstronomy's 1e-10" core, so float64 results match lenstronomy's SIE
        at every radius, down to the centre.
    """
    x = np.asarray(x)
    y = np.asarray(y)
    dtype = np.float32 if (x.dtype == np.float32 and y.dtype == np.float32) else np.float64
    if x.ndim == 0 or y.ndim == 0 or x.shape != y.shape:
        x, y = np.broadcast_arrays(x, y)
        if x.ndim == 0:
            ax, ay = sie_shear_deflection(x.reshape(1), y.reshape(1), theta_e, e1, e2, gamma1, gamma2)
            return ax[0], ay[0]
    x = x.astype(dtype, copy=False)
    y = y.astype(dtype, copy=False)
    theta_e = float(theta_e)
    gamma1 = float(gamma1)
    gamma2 = float(gamma2)
    if theta_e > 0.0:
        cs, sn, q2, eps, k = _sie_frame_constants(theta_e, e1, e2)
        xr = x * cs
        xr += y * sn
        yr = y * cs
        yr -= x * sn
        fx, fy = _sie_unit_frame(xr, yr, q2, eps, _CORE_ARCSEC / q2**0.25)
        fx *= k
        fy *= k
        ax = fx * cs
        ax -= fy * sn
        ay = np.multiply(fx, sn, out=fx)
        ay += fy * cs
    else:
        ax = np.zeros(np.broadcast_shapes(x.shape, y.shape), dtype=dtype)
        ay = np.zeros_like(ax)
    if gamma1 != 0.0 or gamma2 != 0.0:
        ax += x * gamma1
        ax += y * gamma2
        ay += x * gamma2
        ay -= y * gamma1
    return ax, ay


#: a round SIE shot together with other lenses (LensBatch) uses the elliptical formula with this e and
#: q = 1: arctan(e t) / e and arctanh(e t) / e are t (1 +- e^2 t^2 / 3), exact at float32 resolution
_ROUND_EPS_BATCH = 1e-4


@dataclass(frozen=True)
class LensBatch(RowTable):
    """Per-row constants of N SIE + shear lenses for shooting their rays in one pass (float32 arrays).

    Rows with theta_e = 0 get a zero SIE scale (their rays see the shear only, exactly); round SIEs use
    the elliptical formula with a tiny e (_ROUND_EPS_BATCH).  ``take(rows)`` selects rows (with
    repetition), e.g. one per refined cell, so each cell is shot with its own lens.
    """

    g1: np.ndarray
    g2: np.ndarray
    cs: np.ndarray
    sn: np.ndarray
    q2: np.ndarray
    eps: np.ndarray
    s: np.ndarray
    scale: np.ndarray
    lensed: np.ndarray  # bool: theta_e > 0 or any shear
    # derived float32 columns, computed once as the ray shooting would compute them (-g2, 1 - g1, 1 + g1,
    # -sn, scale cs, scale sn, q2 s^2)
    mg2: np.ndarray
    g1m: np.ndarray
    g1p: np.ndarray
    msn: np.ndarray
    kcs: np.ndarray
    ksn: np.ndarray
    q2ss: np.ndarray

    @classmethod
    def from_lenses(cls, lenses) -> LensBatch:
        cols = []
        for lens in lenses:
            if lens.theta_e > 0.0:
                cs, sn, q2, eps, k = _sie_frame_constants(lens.theta_e, lens.e1, lens.e2)
                if eps is None:
                    eps, k = _ROUND_EPS_BATCH, k / _ROUND_EPS_BATCH
            else:
                cs, sn, q2, eps, k = 1.0, 0.0, 0.25, math.sqrt(0.75), 0.0
            lensed = lens.theta_e > 0.0 or lens.gamma1 != 0.0 or lens.gamma2 != 0.0
            cols.append((lens.gamma1, lens.gamma2, cs, sn, q2, eps, _CORE_ARCSEC / q2**0.25, k, lensed))
        arr = np.array(cols, dtype=np.float64).reshape(-1, 9)
        g1, g2, cs, sn, q2, eps, s, scale = (np.ascontiguousarray(arr[:, i], dtype=np.float32) for i in range(8))
        return cls(
            g1, g2, cs, sn, q2, eps, s, scale, arr[:, 8] != 0, mg2=-g2, g1m=1.0 - g1, g1p=1.0 + g1, msn=-sn,
            kcs=scale * cs, ksn=scale * sn, q2ss=np.multiply(q2, s * s),
        )

    def ray_shoot(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Source-plane positions (float32 arcsec) of rays x, y (float32, first axis = row of this batch).

        Points-major (n, k) positions (dhs.core.rows.points_major) are shot as their (k, n) storage, with the
        row constants broadcast along its last axis; the results come back as (n, k) views the same way.
        """
        if points_major(x):
            bx, by = self._ray_shoot(x.T, y.T, 1)
            return bx.T, by.T
        return self._ray_shoot(x, y, x.ndim)

    def _ray_shoot(self, x: np.ndarray, y: np.ndarray, nd: int) -> tuple[np.ndarray, np.ndarray]:
        g2 = self._col("g2", nd)
        bx = x * self._col("g1m", nd)
        bx -= y * g2
        by = y * self._col("g1p", nd)
        by -= x * g2
        self._subtract_sie(x, y, bx, by, nd)
        return bx, by

    def _subtract_sie(self, x, y, bx, by, nd: int) -> None:
        cs, sn = self._col("cs", nd), self._col("sn", nd)
        xr = np.multiply(x, cs)
        xr += y * sn
        yr = np.multiply(y, cs)
        yr -= x * sn
        self._subtract_sie_frame(xr, yr, bx, by, nd)

    def _subtract_sie_frame(self, xr, yr, bx, by, nd: int, work=None) -> None:
        """bx -= alpha_x, by -= alpha_y for rays at xr, yr in each lens's major-axis frame (overwritten);
        ``work``: optional scratch array of the rays' shape."""
        q2, eps, s = self._col("q2", nd), self._col("eps", nd), self._col("s", nd)
        fx, fy = _sie_unit_frame(xr, yr, q2, eps, s, work, q2ss=self._col("q2ss", nd))
        kcs, ksn = self._col("kcs", nd), self._col("ksn", nd)
        # rotate back: alpha = k (fx cs - fy sn, fx sn + fy cs)
        t = np.multiply(fx, kcs, out=work)
        bx -= t
        np.multiply(fy, ksn, out=t)
        bx += t
        np.multiply(fx, ksn, out=t)
        by -= t
        np.multiply(fy, kcs, out=t)
        by -= t

    def ray_shoot_grids(
        self, x1: np.ndarray, y1: np.ndarray, out: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Source-plane positions of each row's grid x1[i] (columns) x y1[i] (rows): two (N, ny, nx) arrays.

        x1 (N, nx), y1 (N, ny): float32 arcsec from each lens centre.  The linear parts (rotation into the
        lens frame, shear, theta) are outer sums of 1-D terms.  Written into ``out`` when given.
        """
        n, nx, ny = x1.shape[0], x1.shape[1], y1.shape[1]
        shape = (n, ny, nx)
        dtype = np.float32
        if out is None:
            out = (np.empty(shape, dtype=dtype), np.empty(shape, dtype=dtype))
        bx, by = out
        mg2 = self._col("mg2", 2)
        np.add((y1 * mg2)[:, :, None], (x1 * self._col("g1m", 2))[:, None, :], out=bx)
        np.add((y1 * self._col("g1p", 2))[:, :, None], (x1 * mg2)[:, None, :], out=by)
        if not self.column("scale").any():
            return bx, by
        cs, sn = self._col("cs", 2), self._col("sn", 2)
        xr = np.add((y1 * sn)[:, :, None], (x1 * cs)[:, None, :], out=scratch_array("ray_xr", shape, dtype))
        yr = np.add((y1 * cs)[:, :, None], (x1 * self._col("msn", 2))[:, None, :], out=scratch_array("ray_yr", shape, dtype))
        self._subtract_sie_frame(xr, yr, bx, by, 3, work=scratch_array("ray_t", shape, dtype))
        return bx, by


def ray_shoot_grid(
    lens: SIELens,
    x1: np.ndarray,
    y1: np.ndarray,
    out: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Source-plane positions of the rays of the grid x1 (columns) x y1 (rows), arcsec.

    Same result as ``lens.ray_shoot`` on the broadcast grid (to float32 rounding), faster for float32 axes
    (LensBatch.ray_shoot_grids).  Inputs are 1-D arcsec arrays from the lens centre; float32 axes give
    float32 rays, others float64 (lens.ray_shoot).  Returns two (y1.size, x1.size) arrays (written into
    ``out`` when given, e.g. scratch arrays).
    """
    x1 = np.asarray(x1)
    y1 = np.asarray(y1)
    if not (x1.dtype == np.float32 and y1.dtype == np.float32):
        # float64 (or mixed) axes: the exact float64 deflection on the broadcast grid
        xg, yg = np.broadcast_arrays(x1.astype(np.float64)[None, :], y1.astype(np.float64)[:, None])
        bx, by = lens.ray_shoot(np.array(xg), np.array(yg))
        if out is not None:
            out[0][...] = bx
            out[1][...] = by
            return out
        return bx, by
    x1 = x1.reshape(1, -1)
    y1 = y1.reshape(1, -1)
    if out is not None:
        out = (out[0].reshape((1,) + out[0].shape), out[1].reshape((1,) + out[1].shape))
    bx, by = LensBatch.from_lenses([lens]).ray_shoot_grids(x1, y1, out)
    return bx[0], by[0]


def max_sie_deflection(theta_e: float, e1: float, e2: float, n_angles: int = 181) -> float:
    """Largest |alpha_SIE| in arcsec (the SIE deflection depends only on the polar angle).

    Sampled every 90 / (n_angles - 1) degrees over a quarter turn in the lens's own frame (the same lens
    with its major axis along x: |alpha| is symmetric about both axes), with 0.1 % of margin.
    """
    return float(max_sie_deflections([theta_e], [e1], [e2], n_angles)[0])


def max_sie_deflections(theta_e, e1, e2, n_angles: int = 181) -> np.ndarray:
    """max_sie_deflection of many SIEs at once: (N,) arcsec for arrays of theta_e, e1, e2 (each row's
    values are those max_sie_deflection gives for it alone: the same arithmetic, elementwise)."""
    theta_e, e1, e2 = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (theta_e, e1, e2))
    out = np.zeros(theta_e.size)
    t = np.linspace(0.0, 0.5 * math.pi, n_angles)
    ux, uy = np.cos(t), np.sin(t)
    rows, consts = [], []
    for i in np.flatnonzero(theta_e > 0.0).tolist():
        _, _, q2, eps, k = _sie_frame_constants(float(theta_e[i]), math.hypot(e1[i], e2[i]), 0.0)
        if eps is None:  # (an exactly round SIS: |alpha| = theta_e up to the core)
            ax, ay = sie_shear_deflection(ux, uy, float(theta_e[i]), 0.0, 0.0)
            out[i] = float(np.max(np.hypot(ax, ay))) * 1.001
            continue
        rows.append(i)
        consts.append((q2, eps, _CORE_ARCSEC / q2**0.25, k))
    if rows:
        q2, eps, s, k = (np.array(c)[:, None] for c in zip(*consts))
        # (in the lens frame the rotation is the identity: the values sie_shear_deflection computes)
        fx, fy = _sie_unit_frame(np.repeat(ux[None], len(rows), 0), np.repeat(uy[None], len(rows), 0), q2, eps, s)
        fx *= k
        fy *= k
        out[rows] = np.max(np.hypot(fx, fy), axis=1) * 1.001
    return out
