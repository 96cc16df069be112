"""The default synthetic DR10 sky (the session's ``synth_sky``): layout, data model, self-consistency."""

from __future__ import annotations

import glob
import os
import re

import galsim
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from dhs.sampling.lrg import lrg_flags
from dhs.survey.bricks import brick_by_name, brick_wcs, bricknames_at
from dhs.survey.layout import brick_summary_path, coadd_path
from dhs.survey.maskbits import MaskBit
from dhs.survey.photometry import psfdepth_ivar_to_mag5, psfsize_to_moffat_fwhm
from dhs.synth.plan import psf_nea_pix
from dhs.synth.render import shape_from_catalogue, stamp_half_size, truncation_radius

BANDS = ("g", "r", "z")


@pytest.fixture(scope="module")
def cat(synth_sky):
    """All sweep rows as a dict of upper-case column → array (read with astropy, not dhs readers)."""
    parts = [fits.getdata(p, 1) for p in synth_sky.sweep_paths]
    names = parts[0].columns.names
    out = {n: np.concatenate([np.asarray(p[n]) for p in parts]) for n in names}
    for n in ("TYPE", "BRICKNAME", "REF_CAT", "WISE_COADD_ID"):
        out[n] = np.char.strip(out[n].astype(str))
    return out


@pytest.fixture(scope="module")
def planes(synth_sky):
    """brick → product → array (image/invvar/psfsize per band, maskbits, wisem1, wisem2) + header WCS."""
    out = {}
    for b in synth_sky.bricknames:
        d = {}
        for band in BANDS:
            for prod in ("image", "invvar", "psfsize"):
                with fits.open(coadd_path(synth_sky.survey_root, b, prod, band)) as h:
                    d[f"{prod}_{band}"] = h[1].data.astype(np.float64)
                    if prod == "image" and band == "r":
                        d["wcs"] = WCS(h[1].header)
        with fits.open(coadd_path(synth_sky.survey_root, b, "maskbits")) as h:
            d["maskbits"] = h[1].data
            d["wisem1"] = h[2].data
            d["wisem2"] = h[3].data
            d["mask_names"] = [x.name for x in h[1:]]
        out[b] = d
    return out


def test_fields_and_layout(synth_sky):
    assert len(synth_sky.bricknames) == 6
    assert synth_sky.n_lrg_inner >= 200
    assert synth_sky.n_lrg_like == synth_sky.n_lrg_inner + len(synth_sky.edge_galaxy_ids)
    root = synth_sky.survey_root
    sweeps = sorted(glob.glob(os.path.join(root, "sweep", "10.1", "sweep-*.fits")))
    assert sweeps == sorted(synth_sky.sweep_paths) and len(sweeps) >= 2
    for p in sweeps:
        assert re.fullmatch(r"sweep-\d{3}[pm]\d{3}-\d{3}[pm]\d{3}\.fits", os.path.basename(p))
    assert synth_sky.brick_summary_path == brick_summary_path(root)
    for b in synth_sky.bricknames:
        assert os.path.dirname(coadd_path(root, b, "maskbits")) == os.path.join(root, "coadd", b[:3], b)
        for band in BANDS:
            for prod in ("image", "invvar", "psfsize"):
                assert os.path.isfile(coadd_path(root, b, prod, band))
        assert os.path.isfile(coadd_path(root, b, "maskbits"))


def test_sweep_has_the_dr10_data_model(cat, shared_data):
    """Every scalar DR9 Tractor column (the 181-column real row) is in the sweep with the same FITS
    format, except MASKBITS, which DR10 widens to 32 bits for its bits 14–16; plus DR10's i band."""
    dr9 = fits.open(shared_data / "legacysurvey" / "dr9-north-row" / "tractor-1054p567.fits")[1].columns
    for col in dr9:
        if col.name.startswith(("APFLUX", "LC_")):
            continue
        assert col.name in cat, col.name
    for extra in ("FLUX_I", "FLUX_IVAR_I", "NOBS_I", "PSFSIZE_I", "MW_TRANSMISSION_I"):
        assert extra in cat
    assert cat["MASKBITS"].dtype.itemsize == 4
    assert set(np.unique(cat["TYPE"])) == {"PSF", "REX", "EXP", "DEV", "SER"}
    assert np.all(cat["BRICK_PRIMARY"])
    assert np.all(cat["RELEASE"] == 10000)


def test_sweep_formats_match_dr9(synth_sky, shared_data):
    dr9 = fits.open(shared_data / "legacysurvey" / "dr9-north-row" / "tractor-1054p567.fits")[1].columns
    mine = fits.open(synth_sky.sweep_paths[0])[1].columns
    fmt9 = {c.name: c.format for c in dr9}
    for c in mine:
        if c.name in fmt9 and c.name != "MASKBITS":
            assert c.format == fmt9[c.name], c.name


def test_objects_lie_in_their_brick_and_coadd(cat, synth_sky):
    assert np.array_equal(bricknames_at(cat["RA"], cat["DEC"]), cat["BRICKNAME"])
    for b in synth_sky.bricknames:
        sel = cat["BRICKNAME"] == b
        brick = brick_by_name(b)
        assert np.all(cat["BRICKID"][sel] == brick.brickid)
        assert np.array_equal(np.sort(cat["OBJID"][sel]), np.arange(sel.sum()))
        x, y = brick_wcs(b, size=synth_sky.coadd_size).wcs_world2pix(cat["RA"][sel], cat["DEC"][sel], 0)
        assert np.all((x > -0.5) & (x < synth_sky.coadd_size - 0.5) & (y > -0.5) & (y < synth_sky.coadd_size - 0.5))
        assert np.allclose(x, cat["BX"][sel], atol=1e-3) and np.allclose(y, cat["BY"][sel], atol=1e-3)


def test_lrg_hosts(cat, synth_sky):
    cols = {k.lower(): v for k, v in cat.items() if v.ndim == 1}
    flags = lrg_flags(cols)
    lrg_all = np.ones(len(cat["RA"]), bool)
    for v in ("v2_baseline_dr10", "v3_color_relaxed", "v4_mag_relaxed", "v5_very_relaxed"):
        lrg_all &= flags[f"is_lrg_{v}"]
    assert int(lrg_all.sum()) == synth_sky.n_lrg_like
    assert int(flags["is_lrg_v2_baseline_dr10"].sum()) == synth_sky.n_lrg_like
    assert set(np.unique(cat["TYPE"][lrg_all])) == {"DEV", "SER"}
    # more relaxed variants select more (the faint red population)
    assert flags["is_lrg_v5_very_relaxed"].sum() > flags["is_lrg_v4_mag_relaxed"].sum() > lrg_all.sum()
    # PSF objects with LRG colours exist and never pass
    psf = cat["TYPE"] == "PSF"
    with np.errstate(divide="ignore", invalid="ignore"):
        z = 22.5 - 2.5 * np.log10(cat["FLUX_Z"])
        r = 22.5 - 2.5 * np.log10(cat["FLUX_R"])
        w1 = 22.5 - 2.5 * np.log10(cat["FLUX_W1"])
    red_psf = psf & (z < 20.4) & (r - z > 0.4) & (z - w1 > 1.6)
    assert red_psf.sum() >= 6
    assert not any(flags[k][psf].any() for k in flags)
    # ≥ 200 hosts at ≥ 40 px from every edge, a few deliberately at an edge
    s = synth_sky.coadd_size
    inner = lrg_all & (cat["BX"] >= 40) & (cat["BY"] >= 40) & (cat["BX"] <= s - 41) & (cat["BY"] <= s - 41)
    assert inner.sum() == synth_sky.n_lrg_inner >= 200
    gid = np.char.add(np.char.add(cat["BRICKNAME"], "_"), cat["OBJID"].astype(str))
    edge = np.isin(gid, synth_sky.edge_galaxy_ids)
    assert edge.sum() == len(synth_sky.edge_galaxy_ids) >= 6
    d_edge = np.minimum.reduce([cat["BX"], cat["BY"], s - 1 - cat["BX"], s - 1 - cat["BY"]])
    assert np.all(d_edge[edge] < 15) and np.all(lrg_all[edge])


def test_psf_hole_covers_a_host(cat, planes, synth_sky):
    assert len(synth_sky.psf_hole_galaxy_ids) == 1
    b, objid = synth_sky.psf_hole_galaxy_ids[0].rsplit("_", 1)
    row = np.flatnonzero((cat["BRICKNAME"] == b) & (cat["OBJID"] == int(objid)))[0]
    ix, iy = int(np.rint(cat["BX"][row])), int(np.rint(cat["BY"][row]))
    p = planes[b]
    assert p["psfsize_g"][iy, ix] == 0.0
    assert p["psfsize_r"][iy, ix] > 0 and p["psfsize_z"][iy, ix] > 0
    assert cat["PSFSIZE_G"][row] > 0 and p["maskbits"][iy, ix] == 0
    assert cat["TYPE"][row] in ("DEV", "SER") and cat["FLUX_Z"][row] > 10 ** (-0.4 * (20.4 - 22.5))
    # the hole is local: elsewhere the map equals the catalogue PSFSIZE
    assert np.mean(p["psfsize_g"] == 0) < 0.02
    for other in synth_sky.bricknames:
        sel = cat["BRICKNAME"] == other
        for band in BANDS:
            m = planes[other][f"psfsize_{band}"]
            assert np.all(np.isclose(m[m > 0], cat[f"PSFSIZE_{band.upper()}"][sel][0], rtol=1e-6))


def test_maskbits(planes, cat, synth_sky):
    allbits = 0
    for b, p in planes.items():
        assert p["mask_names"] == ["MASKBITS", "WISEM1", "WISEM2"]
        mb = p["maskbits"].astype(np.int64)
        allbits |= int(np.bitwise_or.reduce(mb.ravel()))
        assert np.array_equal(p["wisem1"] > 0, (mb & (1 << MaskBit.WISEM1)) > 0)
        assert np.array_equal(p["wisem2"] > 0, (mb & (1 << MaskBit.WISEM2)) > 0)
        satur = (mb & (1 << MaskBit.SATUR_R)) > 0
        assert np.all((mb[satur] & (1 << MaskBit.BRIGHT)) > 0)
        for band in BANDS:
            nodata = p[f"invvar_{band}"] == 0
            flagged = (mb & (1 << MaskBit[f"ALLMASK_{band.upper()}"])) > 0
            assert np.array_equal(nodata, flagged)
            assert np.all(p[f"image_{band}"][nodata] == 0)
        sel = cat["BRICKNAME"] == b
        iy, ix = np.rint(cat["BY"][sel]).astype(int), np.rint(cat["BX"][sel]).astype(int)
        assert np.array_equal(cat["MASKBITS"][sel], p["maskbits"][iy, ix])
    for bit in ("BRIGHT", "SATUR_G", "SATUR_R", "SATUR_Z", "WISEM1", "WISEM2", "MEDIUM", "ALLMASK_G",
                "ALLMASK_R", "ALLMASK_Z"):
        assert allbits & (1 << MaskBit[bit]), bit
    assert {band for _, band in synth_sky.allmask_bricks} == set(BANDS)


def test_coadd_wcs_is_the_brick_rule(planes, synth_sky):
    s = synth_sky.coadd_size
    for b, p in planes.items():
        w, ref = p["wcs"], brick_wcs(b, size=s)
        brick = brick_by_name(b)
        assert np.allclose(w.wcs.crval, [brick.ra, brick.dec], atol=1e-12)
        assert np.allclose(w.wcs.crpix, [(s + 1) / 2] * 2)
        assert np.allclose(w.pixel_scale_matrix, np.diag([-0.262 / 3600, 0.262 / 3600]), atol=1e-15)
        px = np.array([0, s - 1, 0, s - 1, (s - 1) / 2])
        py = np.array([0, 0, s - 1, s - 1, (s - 1) / 2])
        assert np.allclose(w.wcs_pix2world(px, py, 0), ref.wcs_pix2world(px, py, 0), atol=1e-9, rtol=0)
        assert p["image_r"].shape == (s, s)


def _object_boxes(cat, sel, fwhm_max):
    """Centre pixel and half-size of every object's rendering stamp (its light lies inside)."""
    out = []
    for k in np.flatnonzero(sel):
        shape = shape_from_catalogue(cat["TYPE"][k], cat["SHAPE_R"][k], cat["SHAPE_E1"][k],
                                     cat["SHAPE_E2"][k], cat["SERSIC"][k])
        out.append((int(np.rint(cat["BX"][k])), int(np.rint(cat["BY"][k])), stamp_half_size(shape, fwhm_max)))
    return out


def test_pixel_noise_matches_invvar(planes, cat, synth_sky):
    """In empty sky (outside every object's stamp) std(image·sqrt(invvar)) is within 5 % of 1 (here 2 %)."""
    for b, p in planes.items():
        sel = cat["BRICKNAME"] == b
        fwhm_max = float(max(psfsize_to_moffat_fwhm(cat[f"PSFSIZE_{x.upper()}"][sel][0]) for x in BANDS))
        empty = np.ones(p["image_r"].shape, bool)
        for cx, cy, h in _object_boxes(cat, sel, fwhm_max):
            empty[max(cy - h, 0):cy + h + 1, max(cx - h, 0):cx + h + 1] = False
        for band in BANDS:
            iv = p[f"invvar_{band}"]
            use = empty & (iv > 0)
            assert use.sum() > 2000, (b, band, use.sum())
            chi = p[f"image_{band}"][use] * np.sqrt(iv[use])
            assert abs(np.std(chi) - 1.0) < 0.02, (b, band, np.std(chi))
            assert abs(np.mean(chi)) < 5.0 / np.sqrt(use.sum())


def test_catalogue_depth_columns_follow_the_maps(planes, cat, synth_sky):
    from dhs.survey.photometry import mag5_to_psfdepth_ivar  # noqa: F401  (documents the inverse)

    summ = fits.getdata(synth_sky.brick_summary_path, 1)
    assert list(np.char.strip(summ["brickname"].astype(str))) == list(synth_sky.bricknames)
    for i, b in enumerate(synth_sky.bricknames):
        sel = cat["BRICKNAME"] == b
        p = planes[b]
        iy, ix = np.rint(cat["BY"][sel]).astype(int), np.rint(cat["BX"][sel]).astype(int)
        for band in BANDS:
            B = band.upper()
            nea = psf_nea_pix(float(cat[f"PSFSIZE_{B}"][sel][0]))
            expect = p[f"invvar_{band}"][iy, ix] / nea
            assert np.allclose(cat[f"PSFDEPTH_{B}"][sel], expect, rtol=1e-5)
            depth_mag = psfdepth_ivar_to_mag5(np.median(p[f"invvar_{band}"][p[f"invvar_{band}"] > 0]) / nea)
            assert summ[f"psfdepth_{band}"][i] == pytest.approx(depth_mag, abs=1e-4)
            assert summ[f"galdepth_{band}"][i] < summ[f"psfdepth_{band}"][i]
            assert summ[f"psfsize_{band}"][i] == pytest.approx(cat[f"PSFSIZE_{B}"][sel][0], rel=1e-6)
            hdr = fits.getheader(coadd_path(synth_sky.survey_root, b, "image", band), 1)
            assert hdr["MOFFWHM"] == pytest.approx(float(psfsize_to_moffat_fwhm(hdr["PSFSIZE"])), rel=1e-5)
        # stage 3 default quality cuts pass for every brick
        assert summ["ebv"][i] <= 0.12 and summ["psfsize_r"][i] <= 1.6 and summ["psfdepth_r"][i] >= 23.6
        brick = brick_by_name(b)
        assert (summ["ra1"][i], summ["ra2"][i], summ["dec1"][i], summ["dec2"][i]) == (
            brick.ra1, brick.ra2, brick.dec1, brick.dec2)


def test_bricks_form_adjacent_groups_in_separate_areas(synth_sky):
    groups: dict[int, list] = {}
    for b, g in zip(synth_sky.bricknames, synth_sky.brick_groups):
        groups.setdefault(g, []).append(brick_by_name(b))
    assert len(groups) >= 3
    for members in groups.values():
        for m in members[1:]:
            first = members[0]
            share_ra_edge = (m.ra1 == first.ra2 or m.ra2 == first.ra1) and m.dec == first.dec
            share_dec_edge = (m.dec1 == first.dec2 or m.dec2 == first.dec1) and m.ra == first.ra
            assert share_ra_edge or share_dec_edge
    assert sum(len(v) >= 2 for v in groups.values()) >= 2
    ras = np.array([brick_by_name(b).ra for b in synth_sky.bricknames])
    assert ras.max() - ras.min() > 90  # at least two widely separated sky areas


def _galsim_object(cat, k, band, fwhm):
    psf = galsim.Moffat(beta=3.5, fwhm=fwhm)
    flux = float(cat[f"FLUX_{band.upper()}"][k])
    shape = shape_from_catalogue(cat["TYPE"][k], cat["SHAPE_R"][k], cat["SHAPE_E1"][k], cat["SHAPE_E2"][k],
                                 cat["SERSIC"][k])
    if shape.is_point:
        return psf.withFlux(flux), shape
    e = np.hypot(shape.e1, shape.e2)
    q = (1 - e) / (1 + e)
    theta = 0.5 * np.arctan2(shape.e2, shape.e1)
    rc = shape.r_e * np.sqrt(q)
    gal = galsim.Sersic(n=shape.n, half_light_radius=rc, trunc=truncation_radius(shape.n) * rc,
                        flux_untruncated=True).withFlux(flux)
    gal = gal.shear(q=q, beta=(np.pi / 2 + theta) * galsim.radians)
    return galsim.Convolve(gal, psf), shape


def _galsim_aperture_flux(cat, j, band, fwhm, cx, cy, ap):
    """GalSim flux of catalogue object ``j`` inside the aperture mask ``ap`` of the stamp centred on
    pixel (cx, cy)."""
    obj, _ = _galsim_object(cat, j, band, fwhm)
    dx, dy = cat["BX"][j] - cx, cat["BY"][j] - cy
    side = ap.shape[0]
    im = obj.shift(dx * 0.262, dy * 0.262).drawImage(nx=side, ny=side, scale=0.262)
    return float(im.array[ap].sum())


@pytest.mark.slow
def test_aperture_flux_of_bright_isolated_galaxies(planes, cat, synth_sky):
    """Circular-aperture flux in the coadd = catalogue flux × the enclosed fraction GalSim computes for
    the catalogue model (plus GalSim's prediction for any neighbour light, required < 2 %), within
    4σ of the aperture noise + 0.5 % (rendering accuracy); and over all checks the mean of the pulls
    (measured − expected)/σ is within 4/sqrt(N) of 0 (a 0.4 % flux bias at these S/N would fail)."""
    checked = 0
    pulls = []
    for b in synth_sky.bricknames:
        p = planes[b]
        sel = cat["BRICKNAME"] == b
        idx = np.flatnonzero(sel)
        for k in idx:
            if cat["TYPE"][k] == "PSF" or cat["FLUX_R"][k] < 8.0 or p["maskbits"][int(np.rint(cat["BY"][k])),
                                                                                   int(np.rint(cat["BX"][k]))]:
                continue
            x0, y0 = float(cat["BX"][k]), float(cat["BY"][k])
            rad = float(np.clip((2.5 * cat["SHAPE_R"][k] + 2.0) / 0.262, 10, 24))
            s = synth_sky.coadd_size
            if not (rad + 2 < x0 < s - rad - 3 and rad + 2 < y0 < s - rad - 3):
                continue
            boxes = _object_boxes(cat, sel, 2.0)
            # neighbours whose rendering stamp reaches the aperture (their light is confined to it)
            near = [j for j, (bx, by, bh) in zip(idx, boxes)
                    if j != k and abs(bx - x0) < bh + rad + 1 and abs(by - y0) < bh + rad + 1]
            cx, cy = int(np.rint(x0)), int(np.rint(y0))
            h = int(np.ceil(rad)) + 1
            yy, xx = np.mgrid[cy - h:cy + h + 1, cx - h:cx + h + 1]
            ap = (xx - x0) ** 2 + (yy - y0) ** 2 <= rad**2
            for band in ("r", "g", "z"):
                fwhm = float(psfsize_to_moffat_fwhm(cat[f"PSFSIZE_{band.upper()}"][k]))
                img = p[f"image_{band}"][cy - h:cy + h + 1, cx - h:cx + h + 1]
                iv = p[f"invvar_{band}"][cy - h:cy + h + 1, cx - h:cx + h + 1]
                if np.any(iv[ap] == 0):
                    break

                own = _galsim_aperture_flux(cat, k, band, fwhm, cx, cy, ap)
                neigh = sum(_galsim_aperture_flux(cat, j, band, fwhm, cx, cy, ap) for j in near)
                if abs(neigh) > 0.02 * own:
                    break
                measured = float(img[ap].sum())
                sigma = float(np.sqrt((1.0 / iv[ap]).sum()))
                assert abs(measured - own - neigh) < 4 * sigma + 0.005 * own, (b, k, band, measured, own, neigh)
                pulls.append((measured - own - neigh) / sigma)
                assert own > 0.85 * float(cat[f"FLUX_{band.upper()}"][k])
                checked += 1
            if checked >= 24:
                break
        if checked >= 24:
            break
    assert checked >= 12
    assert abs(np.mean(pulls)) < 4.0 / np.sqrt(len(pulls))
    assert 0.5 < np.std(pulls) < 1.6
