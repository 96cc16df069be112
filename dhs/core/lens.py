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

from .scratch import scratch_array

__all__ = [
    "SIELens",
    "ellipticity_to_phi_q",
    "max_sie_deflection",
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


def _sie_major_axis_frame(xr: np.ndarray, yr: np.ndarray, b: float, q: float, c: float):
    """Keeton-Kochanek SIE deflection in the frame whose x axis is the major axis, lenstronomy's core.

    alpha_x = b / e arctan(e x / (psi + s)), alpha_y = b / e arctanh(e y / (psi + q^2 s)) with
    e = sqrt(1 - q^2), psi = sqrt(q^2 (x^2 + s^2) + y^2), s = 1e-10" / sqrt(q); the round limit (|e| -> 0)
    is b (x, y) / (psi + s).  In float32 the core enters through psi only: s / psi is below float32
    resolution wherever psi > ~2 milliarcsec, and psi >= sqrt(q) 1e-10" keeps the centre regular.
    """
    dtype = xr.dtype
    s = _CORE_ARCSEC / math.sqrt(q)
    exact = dtype == np.float64
    if c < _ROUND_ELLIPTICITY:
        r = np.multiply(xr, xr)
        r += yr * yr
        r += s * s
        np.sqrt(r, out=r)
        if exact:
            r += s
        scale = np.divide(b, r, out=r)
        return xr * scale, yr * scale
    one_minus_q = 2.0 * c / (1.0 + c)
    eps = math.sqrt(one_minus_q * (1.0 + q))  # sqrt(1 - q^2), accurate as q -> 1
    psi = np.multiply(xr, q)
    np.multiply(psi, psi, out=psi)
    psi += yr * yr
    psi += (q * s) ** 2
    np.sqrt(psi, out=psi)
    if exact:
        fx = np.divide(eps * xr, psi + s)
        fy = np.divide(eps * yr, psi + (q * q * s), out=psi)
    else:
        inv = np.divide(eps, psi, dtype=dtype)
        fx = np.multiply(xr, inv)
        fy = np.multiply(yr, inv, out=inv)
    np.arctan(fx, out=fx)
    fx *= b / eps
    # |eps * y / psi| <= eps < 1 analytically; clip guards against rounding at the last ulp.
    lim = float(np.nextafter(dtype.type(1.0), dtype.type(0.0)))
    np.clip(fy, -lim, lim, out=fy)
    np.arctanh(fy, out=fy)
    fy *= b / eps
    return fx, fy


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
        phi, q = ellipticity_to_phi_q(e1, e2)
        c = (1.0 - q) / (1.0 + q)
        b = theta_e * math.sqrt(q)
        cs = math.cos(phi)
        sn = math.sin(phi)
        xr = x * cs
        xr += y * sn
        yr = y * cs
        yr -= x * sn
        fx, fy = _sie_major_axis_frame(xr, yr, b, q, c)
        ax = np.multiply(fx, cs, out=xr)
        ax -= fy * sn
        ay = np.multiply(fx, sn, out=yr)
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


def ray_shoot_grid(
    lens: SIELens,
    x1: np.ndarray,
    y1: np.ndarray,
    out: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Source-plane positions of the rays of the grid x1 (columns) x y1 (rows), arcsec.

    Same result as ``lens.ray_shoot`` on the broadcast grid, faster: the linear parts (rotation into the
    lens frame, shear, theta) are outer sums of 1-D terms, and the SIE scale and rotation back are folded
    into one multiply-add.  Inputs are 1-D arcsec arrays from the lens centre; float32 stays float32.
    Returns two (y1.size, x1.size) arrays (written into ``out`` when given, e.g. scratch arrays).
    """
    x1 = np.asarray(x1)
    y1 = np.asarray(y1)
    dtype = np.float32 if (x1.dtype == np.float32 and y1.dtype == np.float32) else np.float64
    x1 = x1.astype(dtype, copy=False)
    y1 = y1.astype(dtype, copy=False)
    shape = (y1.size, x1.size)
    if out is None:
        bx = np.empty(shape, dtype=dtype)
        by = np.empty(shape, dtype=dtype)
    else:
        bx, by = out
    g1, g2 = lens.gamma1, lens.gamma2
    # beta = theta - alpha_shear - alpha_SIE; the first two terms are linear in (x, y)
    np.add.outer(y1 * (-g2), x1 * (1.0 - g1), out=bx)
    np.add.outer(y1 * (1.0 + g1), x1 * (-g2), out=by)
    if lens.theta_e <= 0.0:
        return bx, by
    phi, q = ellipticity_to_phi_q(lens.e1, lens.e2)
    c = (1.0 - q) / (1.0 + q)
    b = lens.theta_e * math.sqrt(q)
    cs = math.cos(phi)
    sn = math.sin(phi)
    xr = np.add.outer(y1 * sn, x1 * cs, out=scratch_array("ray_xr", shape, dtype))
    yr = np.add.outer(y1 * cs, x1 * (-sn), out=scratch_array("ray_yr", shape, dtype))
    t = scratch_array("ray_t", shape, dtype)
    # lenstronomy's core (see _sie_major_axis_frame): here through psi only, as in the float32 path there
    s = _CORE_ARCSEC / math.sqrt(q)
    if c < _ROUND_ELLIPTICITY:
        r = np.multiply(xr, xr, out=scratch_array("ray_r", shape, dtype))
        r += np.multiply(yr, yr, out=t)
        r += s * s
        np.sqrt(r, out=r)
        if dtype == np.float64:
            r += s
        np.divide(b, r, out=r)
        xr *= r
        yr *= r
        fx, fy, kx, ky = xr, yr, 1.0, 1.0
    else:
        one_minus_q = 2.0 * c / (1.0 + c)
        eps = math.sqrt(one_minus_q * (1.0 + q))
        psi = np.multiply(xr, xr, out=scratch_array("ray_r", shape, dtype))
        psi *= q * q
        psi += np.multiply(yr, yr, out=t)
        psi += (q * s) ** 2
        np.sqrt(psi, out=psi)
        if dtype == np.float64:
            fx = np.divide(xr, np.add(psi, s, out=t), out=xr)
            fx *= eps
            fy = np.divide(yr, np.add(psi, q * q * s, out=t), out=yr)
            fy *= eps
        else:
            inv = np.divide(eps, psi, out=psi)
            fx = np.multiply(xr, inv, out=xr)
            fy = np.multiply(yr, inv, out=yr)
        np.arctan(fx, out=fx)
        lim = float(np.nextafter(np.dtype(dtype).type(1.0), np.dtype(dtype).type(0.0)))
        np.clip(fy, -lim, lim, out=fy)
        np.arctanh(fy, out=fy)
        kx = ky = b / eps
    # rotate back: alpha_x = fx cs - fy sn, alpha_y = fx sn + fy cs (times the SIE scale)
    np.multiply(fx, kx * cs, out=t)
    bx -= t
    np.multiply(fy, ky * sn, out=t)
    bx += t
    np.multiply(fx, kx * sn, out=t)
    by -= t
    np.multiply(fy, ky * cs, out=t)
    by -= t
    return bx, by


def max_sie_deflection(theta_e: float, e1: float, e2: float, n_angles: int = 721) -> float:
    """Largest |alpha_SIE| in arcsec (the SIE deflection depends only on the polar angle)."""
    if theta_e <= 0:
        return 0.0
    t = np.linspace(0.0, 2.0 * math.pi, n_angles)
    ax, ay = sie_shear_deflection(np.cos(t), np.sin(t), theta_e, e1, e2)
    return float(np.max(np.hypot(ax, ay))) * 1.001
