"""Coadd store and cutouts: the real DR6 brick 0959p805 and a small DR10-layout tree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from dhs.survey import layout
from dhs.survey.bricks import brick_by_name
from dhs.survey.coadd import CoaddStore, shared_store
from dhs.survey.maskbits import MaskBit

BRICK = "0959p805"


@pytest.fixture(scope="module")
def dr6(shared_data):
    root = shared_data / "legacysurvey" / "dr6-brick-0959p805"
    f = layout.coadd_path(str(root), BRICK, "image", "g")
    return root, WCS(fits.getheader(f, 1)), fits.getdata(f, 1), fits.getdata(
        layout.coadd_path(str(root), BRICK, "invvar", "g"), 1)


@pytest.fixture(scope="module")
def dr6_store(dr6):
    return CoaddStore(str(dr6[0]))


def test_dr6_cutout_in_g_data_is_bit_exact(dr6, dr6_store):
    _, wcs, g, ivg = dr6
    ra, dec = (float(v) for v in wcs.all_pix2world(400.3, 900.2, 0))
    c = dr6_store.cutout(ra, dec, size=64)
    assert (c.x0, c.y0) == (400 - 32, 900 - 32)
    assert c.offset_pix == pytest.approx((0.3, 0.2), abs=1e-6)
    assert c.image.dtype == np.float32 and c.image.shape == (3, 64, 64)
    assert np.array_equal(c.image[0], g[c.y0:c.y0 + 64, c.x0:c.x0 + 64])          # bit-exact, g
    assert np.array_equal(c.invvar[0], ivg[c.y0:c.y0 + 64, c.x0:c.x0 + 64])
    assert (c.invvar[0] > 0).all()
    # the absent r band, maskbits and psfsize are reported, not raised
    assert c.available["image_g"] and c.available["invvar_g"] and c.available["image_z"]
    assert not c.available["image_r"] and not c.available["invvar_r"]
    assert not c.available["maskbits"] and not any(c.available[f"psfsize_{b}"] for b in "grz")
    assert c.maskbits is None and c.wisemask is None
    assert np.isnan(c.psfsize_at_host).all()
    assert not c.ok and c.reason == "band_missing:r"
    assert "maskbits_missing" in c.notes and "psfsize_missing:g" in c.notes
    assert np.all(c.image[1] == 0) and np.all(c.invvar[1] == 0)


def test_dr6_g_only_store(dr6):
    root, wcs, g, _ = dr6
    store = CoaddStore(str(root), bands=("g",))
    ra, dec = (float(v) for v in wcs.all_pix2world(700, 1500, 0))
    c = store.cutout(ra, dec, size=33)
    assert c.ok and c.reason is None
    assert np.array_equal(c.image[0], g[1500 - 16:1500 + 17, 700 - 16:700 + 17])
    # the empty region: flagged with a reason
    ra, dec = (float(v) for v in wcs.all_pix2world(3000, 3000, 0))
    e = store.cutout(ra, dec, size=64)
    assert not e.ok and e.reason == "no_data:g"
    assert np.all(e.invvar == 0)


def test_dr6_empty_region_all_bands(dr6, dr6_store):
    _, wcs, _, _ = dr6
    ra, dec = (float(v) for v in wcs.all_pix2world(3000, 3000, 0))
    c = dr6_store.cutout(ra, dec, size=64)
    assert not c.ok
    assert set(c.problems) == {"band_missing:r", "no_data:g", "no_data:z"}


def test_dr6_host_position_and_orientation(dr6_store):
    """Pixel position from the header WCS; rows grow with Dec, columns toward lower RA."""
    b = brick_by_name(BRICK)
    c = dr6_store.cutout(b.ra, b.dec, size=10)
    assert c.host_pix == pytest.approx((1799.5, 1799.5), abs=1e-6)
    north = dr6_store.cutout(b.ra, b.dec + 10 * 0.262 / 3600, size=10)
    assert north.host_pix[1] - c.host_pix[1] == pytest.approx(10.0, abs=1e-3)
    assert north.host_pix[0] == pytest.approx(c.host_pix[0], abs=1e-3)
    east = dr6_store.cutout(b.ra + 10 * 0.262 / 3600 / np.cos(np.radians(b.dec)), b.dec, size=10)
    assert c.host_pix[0] - east.host_pix[0] == pytest.approx(10.0, abs=1e-2)
    # stamp centre pixel is the nearest pixel to the host
    for cut in (c, north, east):
        assert cut.x0 + 5 + cut.offset_pix[0] == pytest.approx(cut.host_pix[0], abs=1e-9)
        assert cut.y0 + 5 + cut.offset_pix[1] == pytest.approx(cut.host_pix[1], abs=1e-9)
        assert -0.5 <= cut.offset_pix[0] < 0.5 and -0.5 <= cut.offset_pix[1] < 0.5


def test_dr6_off_image(dr6, dr6_store):
    _, wcs, _, _ = dr6
    ra, dec = (float(v) for v in wcs.all_pix2world(5, 600, 0))
    assert dr6_store.cutout(ra, dec, size=32).reason == "brick_missing"   # (ra, dec) is in the next brick
    c = dr6_store.cutout(ra, dec, size=32, brickname=BRICK)
    assert not c.ok and c.reason == "off_image"
    assert c.x0 == 5 - 16
    _, _, g, _ = dr6
    assert np.array_equal(c.image[0][:, 11:], g[600 - 16:600 + 16, 0:21])
    assert np.all(c.image[0][:, :11] == 0) and np.all(c.invvar[0][:, :11] == 0)
    far = dr6_store.cutout(0.0, 0.0, size=32, brickname=BRICK)
    assert not far.ok and far.reason == "off_image"


def test_complete_brick(coadd_tree):
    store = CoaddStore(str(coadd_tree.root))
    b = brick_by_name(coadd_tree.complete)
    w = store.wcs(coadd_tree.complete)
    ra, dec = (float(v) for v in w.all_pix2world(100.2, 100.4, 0))
    c = store.cutout(ra, dec, size=21)
    assert c.ok and c.reason is None and all(c.available.values())
    assert (c.x0, c.y0) == (90, 90) and c.offset_pix == pytest.approx((0.2, 0.4), abs=1e-6)
    for i, band in enumerate("grz"):
        img = fits.getdata(layout.coadd_path(str(coadd_tree.root), b.brickname, "image", band), 1)
        assert np.array_equal(c.image[i], img[90:111, 90:111])
        assert c.image[i][10, 10] == img[100, 100]       # the centre pixel holds the host pixel
    assert c.maskbits.dtype == np.int32
    # psfsize hole in g at the host → NaN; r, z from the map
    assert np.isnan(c.psfsize_at_host[0])
    assert c.psfsize_at_host[1:] == pytest.approx([1.3, 1.4], abs=1e-6)


def test_maskbits_and_wisemask(coadd_tree):
    store = CoaddStore(str(coadd_tree.root))
    w = store.wcs(coadd_tree.complete)
    ra, dec = (float(v) for v in w.all_pix2world(30, 160, 0))
    c = store.cutout(ra, dec, size=40)          # x0 = 10, y0 = 140
    mb = fits.getdata(layout.coadd_path(str(coadd_tree.root), coadd_tree.complete, "maskbits"), 1)
    assert np.array_equal(c.maskbits, mb[140:180, 10:50])
    assert c.maskbits[20, 20] & (1 << MaskBit.BRIGHT)
    assert c.wisemask[15, 15] == 1           # W1 only (150..170, 20..40) minus W2 region (160.., 30..)
    assert c.wisemask[25, 25] == 3           # W1 and W2
    assert c.wisemask[35, 35] == 2           # W2 only
    assert c.wisemask[0, 0] == 0


def test_partial_brick_reports_missing(coadd_tree):
    store = CoaddStore(str(coadd_tree.root))
    b = brick_by_name(coadd_tree.partial)
    c = store.cutout(b.ra, b.dec, size=16)
    assert not c.ok and c.reason == "band_missing:z"
    assert c.available["image_g"] and not c.available["image_z"] and not c.available["maskbits"]
    assert c.maskbits is None and "maskbits_missing" in c.notes
    ok = CoaddStore(str(coadd_tree.root), bands=("g", "r")).cutout(b.ra, b.dec, size=16)
    assert ok.ok


def test_missing_brick(coadd_tree):
    c = CoaddStore(str(coadd_tree.root)).cutout(180.0, 30.0, size=16)
    assert not c.ok and c.reason == "brick_missing" and not any(c.available.values())
    assert c.image.shape == (3, 16, 16) and np.all(c.image == 0)


def test_corrupt_file_is_read_error(coadd_tree):
    store = CoaddStore(str(coadd_tree.root))
    b = brick_by_name(coadd_tree.corrupt)
    c = store.cutout(b.ra, b.dec, size=16)
    bad = layout.coadd_path(str(coadd_tree.root), coadd_tree.corrupt, "image", "r")
    assert not c.ok
    assert c.reason.startswith(f"read_error:{bad}: ")
    assert c.available["image_g"] and not c.available["image_r"]
    junk = layout.coadd_path(str(coadd_tree.root), coadd_tree.corrupt, "psfsize", "z")
    assert any(p.startswith(f"read_error:{junk}: ") for p in c.problems)
    with pytest.raises(OSError, match="legacysurvey-0006p000-image-r"):
        store.plane(coadd_tree.corrupt, "image", "r")


def test_no_data_strip(coadd_tree):
    store = CoaddStore(str(coadd_tree.root))
    w = store.wcs(coadd_tree.complete)
    ra, dec = (float(v) for v in w.all_pix2world(4, 100, 0))
    c = store.cutout(ra, dec, size=8)   # columns 0..7 all have invvar 0
    assert not c.ok and c.reason == "no_data:g"


def test_lru_cache_bounded_in_bytes(coadd_tree):
    plane = coadd_tree.size**2 * 4
    store = CoaddStore(str(coadd_tree.root), cache_bytes=3 * plane + 500)
    b = brick_by_name(coadd_tree.complete)
    store.cutout(b.ra, b.dec, size=8)
    assert store.cached_bytes <= 3 * plane + 500
    assert store.stats["evictions"] > 0
    misses = store.stats["misses"]
    big = CoaddStore(str(coadd_tree.root))
    big.cutout(b.ra, b.dec, size=8)
    n = big.stats["misses"]
    big.cutout(b.ra, b.dec + 1e-4, size=8)
    assert big.stats["misses"] == n and big.stats["hits"] >= n      # second cutout served from memory
    assert misses == n
    assert shared_store(str(coadd_tree.root)) is shared_store(str(coadd_tree.root))
    with pytest.raises(ValueError, match="bands"):
        CoaddStore(str(coadd_tree.root), bands=("u",))


def test_neighbour_fallback(tmp_path):
    """Images of adjacent bricks overlap (here 360² pixels of 2.62″, covering 0.262° like the real
    3600² × 0.262″); a stamp off one brick's image is taken from the neighbour when the store allows it,
    and is bit-exact with that neighbour's pixels."""
    from dhs.survey.bricks import brick_header
    from tests.survey.conftest import _write_fz

    names = ("0001p000", "0003p000")
    for k, name in enumerate(names):
        hdr = brick_header(name, size=360, pixscale=2.62)
        yy, xx = np.mgrid[0:360, 0:360]
        img = ((xx + 7 * yy + 1000 * k) % 4096).astype(np.float32)
        _write_fz(Path(layout.coadd_path(str(tmp_path), name, "image", "g")), img, hdr)
        _write_fz(Path(layout.coadd_path(str(tmp_path), name, "invvar", "g")),
                  np.ones((360, 360), dtype=np.float32), hdr)
    a = brick_by_name(names[0])
    ra, dec = a.ra + 179.0 * 2.62 / 3600, 0.0   # 1 px inside the east (high-RA) edge of A's image
    plain = CoaddStore(str(tmp_path), bands=("g",))
    c = plain.cutout(ra, dec, size=16, brickname=names[0])
    assert c.reason == "off_image"
    nb = CoaddStore(str(tmp_path), bands=("g",), neighbour_fallback=True)
    d = nb.cutout(ra, dec, size=16, brickname=names[0])
    assert d.ok and d.brickname == "0003p000" and f"from_neighbour_of:{names[0]}" in d.notes
    img = fits.getdata(layout.coadd_path(str(tmp_path), "0003p000", "image", "g"), 1)
    assert np.array_equal(d.image[0], img[d.y0:d.y0 + 16, d.x0:d.x0 + 16])


def test_sky_to_pixel_equals_astropys_all_world2pix(dr6):
    """The direct wcslib projection of an undistorted coadd WCS equals astropy's all_world2pix; a WCS with
    SIP distortion still takes all_world2pix."""
    from dhs.survey.coadd import _sky_to_pixel

    _, wcs, _, _ = dr6
    assert not wcs.has_distortion
    rng = np.random.default_rng(0)
    for x, y in rng.uniform(-50, 3650, (20, 2)):
        ra, dec = (float(v) for v in wcs.all_pix2world(x, y, 0))
        want = tuple(float(v) for v in wcs.all_world2pix(ra, dec, 0))
        assert _sky_to_pixel(wcs, ra, dec) == want
    sip = WCS(naxis=2)
    sip.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    sip.wcs.crval, sip.wcs.crpix, sip.wcs.cdelt = [150.0, 2.0], [1800.0, 1800.0], [-7.28e-5, 7.28e-5]
    from astropy.wcs import Sip

    a = np.zeros((3, 3))
    a[2, 0] = 1e-6
    sip.sip = Sip(a, np.zeros((3, 3)), None, None, sip.wcs.crpix)
    assert sip.has_distortion
    ra, dec = (float(v) for v in sip.all_pix2world(2500.0, 700.0, 0))
    assert _sky_to_pixel(sip, ra, dec) == pytest.approx((2500.0, 700.0), abs=1e-6)
