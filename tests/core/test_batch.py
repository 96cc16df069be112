"""render_lensed_batch: rows independent of their batch (bit for bit), equal to render_lensed_bands, and
bad entries reported with their row and field."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dhs.core import InterpolatedSource, SersicSource, SIELens, render_lensed_bands, render_lensed_batch
from dhs.core.batch import CHUNK_ROWS, GROUP_ROWS

SIZE = 48


def _template(rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[-12:13, -12:13].astype(float)
    sx, sy = rng.uniform(2.0, 4.0, 2)
    img = np.exp(-0.5 * ((xx / sx) ** 2 + (yy / sy) ** 2))
    img += 0.3 * np.exp(-0.5 * (((xx - 4) / 1.5) ** 2 + ((yy + 3) / 1.5) ** 2))
    return img


def _random_rows(n: int, seed: int, interpolated_every: int = 5):
    """Mixed rows: Sersic (n 0.5-4, compact to extended) and interpolated sources; lensed, unlensed,
    shear-only and round lenses; per-band PSFs and betas; zero-flux bands; sub-pixel offsets."""
    rng = np.random.default_rng(seed)
    lenses, sources, fluxes, fwhm, beta, offsets = [], [], [], [], [], []
    for i in range(n):
        kind = i % 7
        te = 0.0 if kind == 3 else rng.uniform(0.4, 2.0)
        e = (0.0, 0.0) if kind == 4 else tuple(rng.uniform(-0.3, 0.3, 2))
        g = (0.0, 0.0) if kind == 5 else tuple(rng.uniform(-0.06, 0.06, 2))
        lenses.append(SIELens(te, e[0], e[1], g[0], g[1]))
        r, a = rng.uniform(0, 0.8) * max(te, 0.5), rng.uniform(0, 2 * math.pi)
        x, y = r * math.cos(a), r * math.sin(a)
        if i % interpolated_every == interpolated_every - 1:
            sources.append(InterpolatedSource(_template(rng), 0.03, 1.0, x=x, y=y, angle=rng.uniform(0, 3)))
        else:
            n_s = float(rng.choice([0.5, 1.0, rng.uniform(0.6, 4.0), 4.0]))
            r_eff = 0.004 if kind == 6 else rng.uniform(0.05, 0.6)
            sources.append(SersicSource(1.0, r_eff, n=n_s, e1=rng.uniform(-0.3, 0.3),
                                        e2=rng.uniform(-0.3, 0.3), x=x, y=y))
        f = rng.uniform(0.5, 20.0, 3)
        if kind == 2:
            f[0] = 0.0
        fluxes.append(f)
        fwhm.append(rng.uniform(0.8, 1.8, 3))
        beta.append(rng.choice([2.5, 3.5], 3))
        offsets.append(rng.uniform(-0.5, 0.5, 2))
    return lenses, sources, np.array(fluxes), np.array(fwhm), np.array(beta), np.array(offsets)


def _one(rows, i, **kw):
    lenses, sources, fluxes, fwhm, beta, offsets = rows
    return render_lensed_batch([lenses[i]], [sources[i]], fluxes[i : i + 1], fwhm[i : i + 1],
                               psf_beta=beta[i : i + 1], offsets_pix=offsets[i : i + 1], size=SIZE, **kw)


@pytest.mark.parametrize("n,seed", [(1, 1), (2, 2), (7, 3), (64, 4)])
def test_rows_do_not_depend_on_their_batch_and_equal_render_lensed_bands(n, seed):
    rows = _random_rows(n, seed)
    lenses, sources, fluxes, fwhm, beta, offsets = rows
    images, mu = render_lensed_batch(lenses, sources, fluxes, fwhm, psf_beta=beta, offsets_pix=offsets,
                                     size=SIZE, return_magnification=True)
    assert images.shape == (n, 3, SIZE, SIZE) and images.dtype == np.float64 and mu.shape == (n,)
    for i in range(n):
        alone, mu_alone = _one(rows, i, return_magnification=True)
        assert np.array_equal(alone[0], images[i]), f"row {i} changed with its batch"
        assert mu_alone[0] == mu[i]
        ref, mu_ref = render_lensed_bands(lenses[i], sources[i], fluxes[i], fwhm[i], psf_beta=beta[i],
                                          size=SIZE, offset_pix=offsets[i], return_magnification=True)
        peak = np.abs(ref).max()
        assert np.abs(images[i] - ref).max() <= 1e-5 * peak, f"row {i} differs from render_lensed_bands"
        assert mu[i] == pytest.approx(mu_ref, rel=1e-6)
        assert np.all(images[i][fluxes[i] == 0.0] == 0.0)


def test_row_order_and_neighbours_do_not_change_a_row():
    rows = _random_rows(12, 7, interpolated_every=100)
    lenses, sources, fluxes, fwhm, beta, offsets = rows
    a = render_lensed_batch(lenses, sources, fluxes, fwhm, psf_beta=beta, offsets_pix=offsets, size=SIZE)
    order = np.random.default_rng(0).permutation(12)
    b = render_lensed_batch([lenses[i] for i in order], [sources[i] for i in order], fluxes[order],
                            fwhm[order], psf_beta=beta[order], offsets_pix=offsets[order], size=SIZE)
    assert np.array_equal(a[order], b)
    # a row repeated next to itself, in a batch larger than the renderer's chunks and refinement groups,
    # comes out the same
    rep = [3] * (GROUP_ROWS + CHUNK_ROWS + 3)
    c = render_lensed_batch([lenses[i] for i in rep], [sources[i] for i in rep], fluxes[rep], fwhm[rep],
                            psf_beta=beta[rep], offsets_pix=offsets[rep], size=SIZE)
    assert all(np.array_equal(c[k], a[3]) for k in range(len(rep)))


def test_flux_scales_linearly_and_unlensed_rows_conserve_flux():
    src = SersicSource(1.0, 0.3, n=1.5, e1=0.1)
    out = render_lensed_batch([SIELens(0.0), SIELens(0.0)], [src, src], [[2.0, 5.0], [1.0, 0.0]],
                              [[1.2, 1.5], [1.2, 1.5]], size=64)
    assert np.array_equal(out[0, 0], 2.0 * out[1, 0])
    assert out[0, 1].sum() == pytest.approx(5.0, rel=2e-3)  # (light beyond the stamp: < 0.2 %)
    assert not out[1, 1].any()


def test_empty_batch():
    out = render_lensed_batch([], [], np.zeros((0, 3)), np.zeros((0, 3)), size=32)
    assert out.shape == (0, 3, 32, 32)


@pytest.mark.parametrize("field,change,message", [
    ("lenses", lambda r: r[0].__setitem__(2, "lens"), "row 2: lenses[2]"),
    ("sources", lambda r: r[1].__setitem__(1, None), "row 1: sources[1]"),
    ("fluxes", lambda r: r[2].__setitem__((1, 2), np.nan), "row 1: fluxes[1][2]"),
    ("psf_fwhm_arcsec", lambda r: r[3].__setitem__((2, 0), -1.0), "row 2: psf_fwhm_arcsec[2][0]"),
    ("psf_beta", lambda r: r[4].__setitem__((0, 1), 0.5), "row 0: psf_fwhm_arcsec[0][1] / psf_beta"),
    ("offsets_pix", lambda r: r[5].__setitem__((1, 0), np.inf), "row 1: offsets_pix[1]"),
])
def test_bad_entries_name_row_and_field(field, change, message):
    rows = list(_random_rows(3, 9, interpolated_every=100))
    rows[0], rows[1] = list(rows[0]), list(rows[1])
    change(rows)
    lenses, sources, fluxes, fwhm, beta, offsets = rows
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        render_lensed_batch(lenses, sources, fluxes, fwhm, psf_beta=beta, offsets_pix=offsets, size=SIZE)


def test_bad_shapes_are_reported():
    lenses, sources, fluxes, fwhm, beta, offsets = _random_rows(3, 9, interpolated_every=100)
    with pytest.raises(ValueError, match="3 lenses but 2 sources"):
        render_lensed_batch(lenses, sources[:2], fluxes, fwhm)
    with pytest.raises(ValueError, match=r"psf_fwhm_arcsec must have shape \(3, 3\)"):
        render_lensed_batch(lenses, sources, fluxes, fwhm[:, :2])
    with pytest.raises(ValueError, match=r"offsets_pix must have shape \(3, 2\)"):
        render_lensed_batch(lenses, sources, fluxes, fwhm, offsets_pix=offsets[:2])
    with pytest.raises(ValueError, match=r"fluxes must have shape \(3, n_bands\)"):
        render_lensed_batch(lenses, sources, fluxes[0], fwhm)


def test_a_rows_refinement_flags_do_not_depend_on_the_other_rows():
    """The tabulated refinement criterion of a row gives the same flags evaluated alone (one compare
    against its flagged interval) and among other rows (table lookup, taken when any row's flags are not
    one interval from the centre), also at the bin edges."""
    from dhs.core.sersic_batch import SersicBatch

    shapes = ((0.05, 4.0), (0.3, 1.0), (0.2, 2.5), (0.5, 0.5), (0.1, 0.7))
    srcs = [SersicSource(1.0, r, n=n) for r, n in shapes]
    batch = SersicBatch.from_sources(srcs)
    h = 0.262 / 3
    tables, steps, ends = batch._flag_tables(h, 0.2, None)
    assert tables[0].any() and not tables[0].all()  # (the compact n = 4 source has an interval to test)
    assert ends[-1] == -1 and (ends[:-1] >= 0).all()  # (the n = 0.7 source's flags are not one interval)
    for i in range(len(srcs)):
        # radii around every bin edge of row i (in units of r_eff, as R^2 / r_eff^2 in float32)
        edges = np.arange(tables.shape[1] + 1) * steps[i]
        rho = np.concatenate([edges * (1 + d) for d in (-1e-7, 0.0, 1e-7)]).astype(np.float32)
        rho2 = (rho * rho)[None, :]
        alone = batch.take([i])._table_flags(rho2, h, 0.2, None)
        many = batch._table_flags(np.repeat(rho2, len(srcs), axis=0), h, 0.2, None)[i : i + 1]
        np.testing.assert_array_equal(alone, many)


def test_sorted_unique_matches_numpy():
    """The stable-sort unique used for refined cells and sub-cell moments gives np.unique's values and inverse."""
    from dhs.core.subcell_moments import sorted_unique

    rng = np.random.default_rng(5)
    for n in (0, 1, 7, 5000):
        values = np.concatenate([np.sort(rng.integers(0, 300, n)) + o for o in (0, 1, -1, 40)])
        ref, inverse = np.unique(values, return_inverse=True)
        np.testing.assert_array_equal(sorted_unique(values), ref)
        got, slot = sorted_unique(values, slots=True)
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(slot, inverse.reshape(-1))
