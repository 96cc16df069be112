"""Many unit-flux Sersic sources evaluated in one pass: the source side of the batched renderer.

:class:`SersicBatch` holds the constants of N :class:`~dhs.core.sources.SersicSource` shapes (rendered at
unit flux) as arrays and implements the renderer's source interface (``evaluate``, ``needs_refinement``,
``surface_brightness``, ``integrate_centre_cells``; see dhs.core.sources) on positions whose first axis
is the row of the batch: a (N, ny, nx) grid per row, or one row per refined cell after ``take``.  Every
operation is elementwise per position or reduces over a fixed-length axis, so a row's values do not
depend on the other rows of the batch.  The arithmetic is SersicSource's (float32 where it uses float32).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from .rows import RowTable, points_major
from .scratch import scratch_array
from .sersic import _MIN_CELL_ERROR, SersicSource, sersic_flag_tables
from .sersic_centre import _CENTRE_RULE, centre_cell_rays, centre_near_cells

__all__ = ["SersicBatch"]

_F32 = ("x", "y", "ea", "eb", "ed", "n", "b", "inv_n", "half_inv_n", "lua_b", "rho_max", "min_scale", "r_eff")


@dataclass(frozen=True)
class SersicBatch(RowTable):
    """Per-row constants of unit-flux Sersic sources (float32 and float64 (suffix 64) arrays, length N).

    ea, eb, ed: the symmetric ellipse matrix E = [[ea, eb], [eb, ed]] with R / r_eff = |E (beta - centre)|;
    b: exact b_n; lua_b: log of the surface brightness at the centre (log amplitude + b_n).
    """

    x: np.ndarray
    y: np.ndarray
    ea: np.ndarray
    eb: np.ndarray
    ed: np.ndarray
    n: np.ndarray
    b: np.ndarray
    inv_n: np.ndarray
    half_inv_n: np.ndarray
    lua_b: np.ndarray
    rho_max: np.ndarray
    min_scale: np.ndarray
    r_eff: np.ndarray
    c64: np.ndarray  # (N, 10) float64: x, y, ea, eb, ed, n, b, lua_b, r_eff, min_scale
    consts: np.ndarray  # (N, 6) float64: the refinement criterion's constants (sersic_flag_tables)
    flag_tables: dict  # (h, tol, area) -> every row's refinement table (shared by selections)

    #: the renderer's source interface flags (see dhs.core.sources)
    wants_cell_size = False
    smooth_below_refinement = False
    non_negative = True

    @classmethod
    def from_sources(cls, sources) -> SersicBatch:
        rows = []
        for s in sources:
            (a, b_), (_, d) = s._ellipse_matrix().tolist()
            lua_b = s._log_unit_amp + s._b  # unit flux: log amplitude = log unit amplitude
            rows.append(
                (s.x, s.y, a, b_, d, s.n, s._b, 1.0 / s.n, 0.5 / s.n, lua_b, s._rho_max, s.min_scale, s.r_eff)
            )
        arr = np.array(rows, dtype=np.float64).reshape(-1, len(_F32))
        f32 = {name: np.ascontiguousarray(arr[:, i], dtype=np.float32) for i, name in enumerate(_F32)}
        c64 = arr[:, [0, 1, 2, 3, 4, 5, 6, 9, 12, 11]].copy()
        consts = np.array(
            [(s.n, s._b, s._rho_max, s.min_scale, s.r_eff, s._log_unit_amp) for s in sources], dtype=np.float64
        ).reshape(-1, 6)
        return cls(**f32, c64=c64, consts=consts, flag_tables={})

    # --- evaluation ----------------------------------------------------------------------------
    def _rho2(self, bx: np.ndarray, by: np.ndarray, scratch: bool = False, nd: int | None = None) -> np.ndarray:
        """(R / r_eff)^2, float32, for positions whose first axis is the row (``nd`` = 1: whose last axis is)."""
        nd = bx.ndim if nd is None else nd
        a, b, d = self._col("ea", nd), self._col("eb", nd), self._col("ed", nd)
        if scratch:
            shape = bx.shape
            dx = np.subtract(bx, self._col("x", nd), out=scratch_array("sersic_dx", shape, np.float32))
            dy = np.subtract(by, self._col("y", nd), out=scratch_array("sersic_dy", shape, np.float32))
            t = scratch_array("sersic_t", shape, np.float32)
            u = np.multiply(dx, a, out=scratch_array("sersic_rho2", shape, np.float32))
        else:
            dx = bx - self._col("x", nd)
            dy = by - self._col("y", nd)
            t = None
            u = dx * a
        u += np.multiply(dy, b, out=t)
        v = np.multiply(dy, d, out=dy)
        v += np.multiply(dx, b, out=t)
        np.multiply(u, u, out=u)
        np.multiply(v, v, out=v)
        u += v
        return u

    def _sb_from_rho2(
        self, u: np.ndarray, core_radius: float, power: np.ndarray | None = None, rows_last: bool = False
    ) -> np.ndarray:
        """Unit-flux surface brightness from (R / r_eff)^2; see SersicSource.  Written into ``power`` (u to
        the 1 / (2n), computed by the caller) when given, else into ``u``.  ``rows_last``: u's last axis is
        the row (points-major positions), else its first."""
        nd = 1 if rows_last else u.ndim
        inner = None
        if core_radius > 0.0:
            rho_c = core_radius / self.column("c64")[:, 8]
            inner = u < (rho_c * rho_c).reshape((-1,) + (1,) * (nd - 1))
        t = np.power(u, self._col("half_inv_n", nd), out=u) if power is None else power
        t *= -self._col("b", nd)
        t += self._col("lua_b", nd)
        out = np.exp(t, out=t)
        if inner is not None and inner.any():
            # (the core's mean surface brightness, for the rows (cells) that reach it only)
            if rows_last:
                hit = np.flatnonzero(inner.reshape(-1, inner.shape[-1]).any(axis=0))
                pick = (Ellipsis, hit)
            else:
                hit = np.flatnonzero(inner.reshape(inner.shape[0], -1).any(axis=1))
                pick = (hit,)
            n64, b64 = self.column("c64")[hit, 5], self.column("c64")[hit, 6]
            frac = special.gammainc(2.0 * n64, b64 * rho_c[hit] ** (1.0 / n64))
            value = (frac / (math.pi * core_radius * core_radius)).astype(np.float32)
            part = out[pick]
            np.copyto(part, value.reshape((-1,) + (1,) * (nd - 1)), where=inner[pick])
            out[pick] = part
        return out

    def surface_brightness(self, bx: np.ndarray, by: np.ndarray, core_radius: float = 0.0) -> np.ndarray:
        """Unit-flux surface brightness (nanomaggies/arcsec^2 per nanomaggy), float32."""
        if points_major(bx):
            return self._sb_from_rho2(self._rho2(bx.T, by.T, nd=1), core_radius, rows_last=True).T
        return self._sb_from_rho2(self._rho2(bx, by), core_radius)

    def evaluate(self, bx, by, h, tol: float, core_radius: float = 0.0, area=None, cell=None):
        """(surface_brightness, needs_refinement) in one pass; ``h`` scalar (grid) or one per position."""
        if np.ndim(h) == 0:
            rho2 = self._rho2(bx, by, scratch=True)
            flags = self._table_flags(rho2, float(h), float(tol), area)
            # (rho2 ** (1 / 2n) as exp(log(rho2) / 2n): half the cost of np.power in float32; rho2 = 0 gives 0)
            with np.errstate(divide="ignore"):
                sb = np.log(rho2)
            sb *= self._col("half_inv_n", rho2.ndim)
            np.exp(sb, out=sb)
            return self._sb_from_rho2(rho2, core_radius, sb), flags
        h = np.asarray(h, dtype=np.float32)
        if points_major(bx):
            rho2 = self._rho2(bx.T, by.T, nd=1)
            flags = self._refinement_flags(np.sqrt(rho2), h.T, float(tol), area, rows_last=True)
            return self._sb_from_rho2(rho2, core_radius, rows_last=True).T, flags.T
        rho2 = self._rho2(bx, by)
        flags = self._refinement_flags(np.sqrt(rho2), h, float(tol), area)
        return self._sb_from_rho2(rho2, core_radius), flags

    def needs_refinement(self, bx, by, h, tol: float = 0.02, area=None) -> np.ndarray:
        """Positions whose cells of (per-position) source-plane side ``h`` are too coarse; see SersicSource."""
        rho = np.sqrt(self._rho2(bx, by))
        return self._refinement_flags(rho, np.asarray(h, dtype=np.float32), float(tol), area)

    def _flag_tables(self, h: float, tol: float, area) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every row's tabulated refinement criterion for one cell size (dhs.core.sersic.sersic_flag_tables):
        (N, bins) bool, (N,) bin widths and (N,) float32 ends for all rows of the batch (not only a
        selection), cached.  A row's end is the number of bins flagged from the centre outwards when no bin
        beyond them is flagged (the usual case: its flags are rho / width < end), else -1."""
        key = (h, tol, area)
        hit = self.flag_tables.get(key)
        if hit is None:
            tables, steps = sersic_flag_tables(self.__dict__["consts"], h, tol, area)
            size = tables.shape[1]
            unflagged = ~tables
            end = np.where(unflagged.any(axis=1), unflagged.argmax(axis=1), size)
            beyond = (tables & (np.arange(size)[None, :] >= end[:, None])).any(axis=1)
            ends = np.where(beyond, -1, end).astype(np.float32)
            hit = self.flag_tables[key] = (tables, steps, ends)
        return hit

    def _table_flags(self, rho2: np.ndarray, h: float, tol: float, area) -> np.ndarray:
        """needs_refinement for one cell size on (N, ...) grids, from each source's tabulated criterion."""
        tables, steps, ends = self._flag_tables(h, tol, area)
        rows = self._selection()
        if rows is None:
            rows = np.arange(tables.shape[0])
        size = tables.shape[1]
        nd = rho2.ndim
        shape = (-1,) + (1,) * (nd - 1)
        rho = np.sqrt(rho2, out=scratch_array("sersic_rho", rho2.shape, np.float32))
        rho *= (1.0 / steps[rows]).astype(np.float32).reshape(shape)
        row_ends = ends[rows]
        if (row_ends >= 0.0).all():
            # rows whose flagged radii form one interval from the centre (the usual case): one compare (the
            # bin index of rho is below ``end``: the same float32 arithmetic as the lookup below, so a row's
            # flags do not depend on the rows evaluated with it)
            return rho < row_ends.reshape(shape)
        np.minimum(rho, float(size - 1), out=rho)
        index = scratch_array("sersic_index", rho2.shape, np.intp)
        np.copyto(index, rho, casting="unsafe")  # truncation
        index += (rows * size).reshape(shape)
        return tables.reshape(-1)[index]

    def _refinement_flags(self, rho: np.ndarray, h: np.ndarray, tol: float, area, rows_last: bool = False) -> np.ndarray:
        """SersicSource._refinement_flags (centre_reach 0) with per-row constants, float32 (``rows_last``: the
        row is rho's last axis, else its first)."""
        nd = 1 if rows_last else rho.ndim
        n, b = self._col("n", nd), self._col("b", nd)
        inv_n = self._col("inv_n", nd)
        half_diag = 0.7072 * h / self._col("min_scale", nd)
        rho_min = np.maximum(rho - half_diag, 0.0)
        scale = h / self._col("r_eff", nd)
        scale *= scale
        scale *= 1.0 / 24.0
        k = b * inv_n
        m = inv_n - 1.0

        def curvature(r: np.ndarray, k: np.ndarray, m: np.ndarray) -> np.ndarray:
            r = np.maximum(r, 1e-6)
            g = np.power(r, m)
            g *= k
            inv_r = 1.0 / r
            t = g - m * inv_r
            np.abs(t, out=t)
            t += inv_r
            t *= g
            return t

        nearest = np.maximum(rho_min, half_diag)
        # the larger curvature of the two radii: at the smaller one for n >= 1 (it decreases outwards), both
        # evaluated for the rows with n < 1 only
        err = curvature(np.minimum(rho, nearest), k, m)
        wide = np.flatnonzero(m.reshape(-1) > 0.0)
        if wide.size:
            pick = (Ellipsis, wide) if rows_last else (wide,)
            outer = curvature(np.maximum(rho[pick], nearest[pick]), k[wide], m[wide])
            err[pick] = np.maximum(err[pick], outer)
        err *= scale
        cusp = 0.5 * b * np.power(2.0 * half_diag, inv_n)
        at_centre = rho_min <= 0.0
        err = np.where(at_centre, np.maximum(err, cusp), err)
        cell_frac = np.exp(self._col("lua_b", nd) - b * np.power(rho_min, inv_n))
        cell_frac *= h * h if area is None else area
        over = err > tol
        over |= at_centre & (n != 0.5)
        over &= rho_min < self._col("rho_max", nd)
        np.minimum(err, 1.0, out=err)
        err *= cell_frac
        over &= err > _MIN_CELL_ERROR
        return over

    def integrate_centre_cells(self, bx: np.ndarray, by: np.ndarray, h: float, means: np.ndarray) -> None:
        """SersicSource.integrate_centre_cells for cells of many rows (this batch: one row per cell)."""
        if bx.shape[0] == 0:
            return
        c = self.column("c64")
        n64, b64, lua_b, min_scale = c[:, 5], c[:, 6], c[:, 7], c[:, 9]
        change = 0.5 * b64 * (2.0 * 0.7072 * 2.0 * h / min_scale) ** (1.0 / n64)
        worth = 9.0 * np.exp(lua_b) * h * h * np.minimum(change, 1.0) >= _MIN_CELL_ERROR
        ex = bx[:, 1] - bx[:, 0]
        ey = by[:, 1] - by[:, 0]
        fx = bx[:, 2] - bx[:, 0]
        fy = by[:, 2] - by[:, 0]
        reach = np.maximum(ex * ex + ey * ey, fx * fx + fy * fy)
        reach *= 3.5**2 * 3.0
        cx = bx[:, 0] - self.column("x")
        cy = by[:, 0] - self.column("y")
        sel = np.flatnonzero((cx * cx + cy * cy <= reach) & worth & (n64 != 0.5))
        if sel.size == 0:
            return
        c = c[sel]
        px = bx[sel].astype(np.float64)
        py = by[sel].astype(np.float64)
        # Jacobian from the 2x2 rays at (-,-), (+,-), (-,+), (+,+) x h / (2 sqrt 3) (fixed-order sums)
        kj = 0.5 * math.sqrt(3.0) / h
        j00 = (((px[:, 1] - px[:, 0]) + px[:, 3]) - px[:, 2]) * kj
        j01 = (((px[:, 2] - px[:, 0]) + px[:, 3]) - px[:, 1]) * kj
        j10 = (((py[:, 1] - py[:, 0]) + py[:, 3]) - py[:, 2]) * kj
        j11 = (((py[:, 2] - py[:, 0]) + py[:, 3]) - py[:, 1]) * kj
        bend = np.abs(((px[:, 0] - px[:, 1]) - px[:, 2]) + px[:, 3])
        bend += np.abs(((py[:, 0] - py[:, 1]) - py[:, 2]) + py[:, 3])
        dx = c[:, 0] - 0.25 * (((px[:, 0] + px[:, 1]) + px[:, 2]) + px[:, 3])
        dy = c[:, 1] - 0.25 * (((py[:, 0] + py[:, 1]) + py[:, 2]) + py[:, 3])
        near, ux, uy = centre_near_cells(j00, j01, j10, j11, dx, dy, bend, h)
        if near.size == 0:
            return
        half = 0.5 * h
        c = c[near]
        j00, j01, j10, j11 = j00[near], j01[near], j10[near], j11[near]
        ox, oy, r_in, r_out, halfw = centre_cell_rays(ux, uy, half)
        weights = _CENTRE_RULE[1]
        # elliptical radius per unit image-plane distance along phi: E J (cos phi, sin phi)
        ea, eb, ed = c[:, 2], c[:, 3], c[:, 4]
        m00, m01 = ea * j00 + eb * j10, ea * j01 + eb * j11
        m10, m11 = eb * j00 + ed * j10, eb * j01 + ed * j11
        su = m00[:, None, None] * ox + m01[:, None, None] * oy
        sv = m10[:, None, None] * ox + m11[:, None, None] * oy
        m2 = su * su + sv * sv
        x = np.stack((r_out, r_in)) * np.sqrt(m2)
        n64, b64 = c[:, 5, None, None], c[:, 6, None, None]
        enclosed = special.gammainc(2.0 * n64, b64 * x ** (1.0 / n64))
        terms = (enclosed[0] - enclosed[1]) / m2 * (halfw[..., None] * weights)
        total = terms.reshape(terms.shape[0], -1).sum(axis=1)
        means[sel[near]] = (1.0 / (2.0 * math.pi * c[:, 8] ** 2 * h * h)) * total

    @staticmethod
    def check(source, row: int) -> SersicSource:
        """``source`` if it is a SersicSource, else ValueError naming the row."""
        if not isinstance(source, SersicSource):
            raise ValueError(f"row {row}: sources[{row}] must be a SersicSource, got {type(source).__name__}")
        return source
