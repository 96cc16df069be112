"""Coadd store over a DR10-layout survey root (local folder or ``s3://bucket/prefix``) and cutouts.

Files (see :mod:`dhs.survey.layout`): per band ``image`` (nanomaggies/pixel), ``invvar``
(1/nanomaggy²) and ``psfsize`` (arcsec) maps, and one ``maskbits`` file (HDU1 MASKBITS, HDU2 WISEMASK_W1,
HDU3 WISEMASK_W2). ``.fits.fz`` images keep their data in HDU1.

Planes are read whole (S3 objects are downloaded to a per-process temporary folder, read, and the copy
deleted) and kept in a per-process LRU cache bounded in bytes. A missing file is remembered as missing
and reported per product and band in :attr:`Cutout.available`; a file that exists but cannot be read, or
whose image HDU is not a 2-D array, gives ``ok=False`` with ``reason = "read_error:<file>: <message>"``;
a brick name that is not of the DR10 form gives ``reason = "bad_brickname:<name>"``. Nothing here raises
for bad data.

Cutouts copy coadd pixels bit for bit (no resampling). The host's pixel position comes from the
image file's own header WCS (astropy, 0-based pixels); the stamp is centred on the nearest pixel, and
``offset_pix`` is the host position minus that centre pixel (dx along columns, dy along rows), each in
[−0.5, 0.5). Row index increases with Dec, column index toward lower RA.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from dhs.io.paths import S3Options
from dhs.survey import layout
from dhs.survey.bricks import PIXSCALE_ARCSEC, brick_at, bricknames_at, validate_brickname
from dhs.survey.s3access import FileAccess, RemoteFileMissing

# Severity order of failure reasons (first one found becomes Cutout.reason).
_REASON_ORDER = ("bad_brickname", "read_error", "brick_missing", "wcs_mismatch", "off_image", "band_missing", "no_data",
                 "nan_pixels")


@dataclass
class Cutout:
    """A stamp cut from one brick's coadds. Arrays are copies; shapes use ``nb = len(bands)``.

    ``image`` (nb, size, size) float32 nanomaggies/pixel (0 where absent); ``invvar`` (nb, size, size)
    float32 1/nanomaggy² (0 where absent); ``maskbits`` (size, size) int32 or None; ``wisemask``
    (size, size) uint8 (bit 0: WISEMASK_W1 set, bit 1: WISEMASK_W2 set) or None; ``psfsize_at_host``
    (nb,) arcsec, NaN if the map is missing or ≤ 0 there; ``offset_pix`` host minus centre pixel
    (dx, dy) in pixels; ``x0, y0`` brick-image pixel (0-based column, row) of the stamp's [0, 0];
    ``available`` per product/band; ``problems`` every failure found (``reason`` is the most severe);
    ``notes`` non-fatal remarks (e.g. missing maskbits/psfsize files).
    """

    ok: bool
    reason: str | None
    brickname: str
    size: int
    bands: tuple[str, ...]
    image: np.ndarray
    invvar: np.ndarray
    maskbits: np.ndarray | None
    wisemask: np.ndarray | None
    psfsize_at_host: np.ndarray
    offset_pix: tuple[float, float]
    x0: int
    y0: int
    available: dict[str, bool]
    host_pix: tuple[float, float] = (math.nan, math.nan)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class _Missing:
    """Cache sentinel: the file does not exist."""

    nbytes = 64


@dataclass
class _ReadError:
    message: str
    nbytes: int = 256


@dataclass
class _Plane:
    """One decoded image plane (or the three maskbits HDUs) with its header."""

    data: np.ndarray
    header: fits.Header
    extra: tuple[np.ndarray | None, ...] = ()
    _wcs: WCS | None = None

    @property
    def wcs(self) -> WCS:
        """Celestial WCS of the header (built once)."""
        if self._wcs is None:
            self._wcs = WCS(self.header, naxis=2)
        return self._wcs

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes + sum(e.nbytes for e in self.extra if e is not None))


def _image_hdu(hdul: fits.HDUList) -> Any:
    """The HDU holding the image: HDU1 for compressed/multi-extension files, else the primary."""
    for h in list(hdul)[1:2] + [hdul[0]]:
        if getattr(h, "data", None) is not None and getattr(h, "is_image", False):
            return h
    raise ValueError("no image data in HDU1 or the primary HDU")


def _native(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.byteorder not in ("=", "|"):
        a = a.astype(a.dtype.newbyteorder("="))
    return np.ascontiguousarray(a)


def _read_plane(local: str, product: str) -> _Plane:
    """Decode one coadd file; a truncation warning from astropy is turned into an error."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plane = _decode(local, product)
    for w in caught:
        if "truncated" in str(w.message).lower():
            raise OSError(str(w.message))
    return plane


def _image_2d(hdul: fits.HDUList) -> Any:
    """The image HDU (:func:`_image_hdu`); ValueError unless it holds a 2-D array."""
    h = _image_hdu(hdul)
    if h.data.ndim != 2:
        raise ValueError(f"HDU {hdul.index_of(h)} holds a {h.data.ndim}-D array of shape {h.data.shape}; "
                         "expected a 2-D image")
    return h


def _decode(local: str, product: str) -> _Plane:
    with fits.open(local, memmap=False) as hdul:
        if product != "maskbits":
            h = _image_2d(hdul)
            return _Plane(_native(h.data), h.header.copy())
        h = _image_2d(hdul)
        mask = _native(h.data)
        wise: list[np.ndarray | None] = []
        for i in (2, 3):
            arr = None
            if len(hdul) > i and hdul[i].data is not None:
                arr = _native(hdul[i].data)
                if arr.shape != mask.shape:
                    arr = None
            wise.append(arr)
        return _Plane(mask, h.header.copy(), tuple(wise))


class CoaddStore:
    """Read coadd products of a DR10-layout survey root with a per-process LRU cache.

    ``root``: local folder or ``s3://bucket/prefix``; ``cache_bytes``: bound of decoded planes kept in
    memory (bytes; the most recently read plane is always kept); ``s3_endpoint_url``/``s3_region``: S3
    endpoint for non-AWS servers (credentials from the standard boto3 chain); ``bands``: stamp bands;
    ``neighbour_fallback``: take a stamp that runs off its brick's image from an overlapping neighbour.
    """

    def __init__(self, root: str, cache_bytes: int = 2_000_000_000, s3_endpoint_url: str | None = None,
                 s3_region: str | None = None, bands: tuple[str, ...] = ("g", "r", "z"),
                 neighbour_fallback: bool = False) -> None:
        if cache_bytes < 0:
            raise ValueError(f"cache_bytes must be ≥ 0 bytes, got {cache_bytes}")
        bad = [b for b in bands if b not in layout.BANDS]
        if bad or not bands:
            raise ValueError(f"bands must be a non-empty subset of {layout.BANDS}, got {bands!r}")
        self.root = str(root)
        self.cache_bytes = int(cache_bytes)
        self.bands = tuple(bands)
        self.neighbour_fallback = bool(neighbour_fallback)
        self._access = FileAccess(S3Options(endpoint_url=s3_endpoint_url, region=s3_region))
        self._cache: OrderedDict[tuple[str, str, str | None], Any] = OrderedDict()
        self._cached_bytes = 0
        self._lock = threading.RLock()
        self.stats = {"hits": 0, "misses": 0, "evictions": 0}

    # ----------------------------------------------------------------------------------- cache
    @property
    def cached_bytes(self) -> int:
        """Bytes of decoded planes currently held."""
        return self._cached_bytes

    def clear_cache(self) -> None:
        """Drop every cached plane."""
        with self._lock:
            self._cache.clear()
            self._cached_bytes = 0

    def _load(self, brickname: str, product: str, band: str | None) -> Any:
        """Cached plane, :class:`_Missing` or :class:`_ReadError` for one file."""
        key = (brickname, product, band)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                self.stats["hits"] += 1
                return self._cache[key]
            self.stats["misses"] += 1
        path = layout.coadd_path(self.root, brickname, product, band)
        entry: Any
        try:
            with self._access.local_copy(path) as local:
                entry = _read_plane(local, product)
        except RemoteFileMissing:
            entry = _Missing()
        except Exception as exc:  # noqa: BLE001 - corrupt/truncated/unreadable: report, never raise
            msg = " ".join(str(exc).split()) or type(exc).__name__
            entry = _ReadError(f"read_error:{path}: {type(exc).__name__}: {msg}"[:500])
        with self._lock:
            old_entry = self._cache.pop(key, None)     # another thread may have loaded it meanwhile
            if old_entry is not None:
                self._cached_bytes -= old_entry.nbytes
            self._cache[key] = entry
            self._cached_bytes += entry.nbytes
            while self._cached_bytes > self.cache_bytes and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                self._cached_bytes -= old.nbytes
                self.stats["evictions"] += 1
        return entry

    def plane(self, brickname: str, product: str, band: str | None = None) -> np.ndarray | None:
        """The whole decoded plane of one file (None if the file is missing); raises OSError naming the
        file if it cannot be read. ``maskbits`` returns the MASKBITS (HDU1) array."""
        validate_brickname(brickname)
        e = self._load(brickname, product, band)
        if isinstance(e, _Missing):
            return None
        if isinstance(e, _ReadError):
            raise OSError(e.message)
        return e.data

    def wcs(self, brickname: str, band: str | None = None) -> WCS | None:
        """Header WCS of the brick's image in ``band`` (first available band if None)."""
        for b in ([band] if band else self.bands):
            e = self._load(validate_brickname(brickname), "image", b)
            if isinstance(e, _Plane):
                return e.wcs.deepcopy()
        return None

    # ----------------------------------------------------------------------------------- cutouts
    def cutout(self, ra: float, dec: float, size: int = 64, brickname: str | None = None) -> Cutout:
        """Stamp of ``size``×``size`` pixels around (ra, dec) [deg] from ``brickname`` (default: the
        brick containing the position). Never raises for missing or bad data: see :class:`Cutout`.

        With ``neighbour_fallback`` set on the store, a stamp that runs off its brick's image is taken
        instead from a neighbouring brick whose (overlapping) image holds it whole, if there is one; the
        cutout then names that brick and carries the note ``from_neighbour_of:<brick>``.
        """
        if size <= 0:
            raise ValueError(f"cutout size must be a positive number of pixels, got {size}")
        if brickname is None:
            brickname = brick_at(ra, dec).brickname
        try:
            validate_brickname(brickname)
        except ValueError:
            return self._failed(f"bad_brickname:{brickname!r}", str(brickname), size)
        cut = self._cutout_from(ra, dec, size, brickname)
        if not self.neighbour_fallback or cut.reason != "off_image":
            return cut
        for other in self._neighbours(ra, dec, size, brickname):
            alt = self._cutout_from(ra, dec, size, other)
            if alt.ok:
                alt.notes.append(f"from_neighbour_of:{brickname}")
                return alt
        return cut

    def _failed(self, reason: str, brickname: str, size: int) -> Cutout:
        """A cutout with ``ok=False`` and no pixels."""
        nb = len(self.bands)
        return Cutout(ok=False, reason=reason, brickname=brickname, size=size, bands=self.bands,
                      image=np.zeros((nb, size, size), dtype=np.float32),
                      invvar=np.zeros((nb, size, size), dtype=np.float32), maskbits=None, wisemask=None,
                      psfsize_at_host=np.full(nb, np.nan), offset_pix=(math.nan, math.nan), x0=0, y0=0,
                      available={}, problems=[reason])

    def _neighbours(self, ra: float, dec: float, size: int, brickname: str) -> list[str]:
        """Bricks (other than ``brickname``) under the stamp's centre, corners and edge midpoints."""
        half_deg = (size / 2.0 + 1.0) * PIXSCALE_ARCSEC / 3600.0
        cosd = max(math.cos(math.radians(dec)), 1e-6)
        dra, ddec = half_deg / cosd, half_deg
        pts = [(ra + i * dra, min(max(dec + j * ddec, -90.0), 90.0))
               for i in (-1, 0, 1) for j in (-1, 0, 1)]
        names = bricknames_at(np.array([p[0] for p in pts]), np.array([p[1] for p in pts]))
        return [str(n) for n in dict.fromkeys(names.tolist()) if n != brickname]

    def _cutout_from(self, ra: float, dec: float, size: int, brickname: str) -> Cutout:
        """The cutout from one given brick (see :meth:`cutout`)."""
        nb = len(self.bands)
        image = np.zeros((nb, size, size), dtype=np.float32)
        invvar = np.zeros((nb, size, size), dtype=np.float32)
        psf_host = np.full(nb, np.nan, dtype=np.float64)
        available: dict[str, bool] = {}
        problems: list[str] = []
        notes: list[str] = []

        planes: dict[tuple[str, str], Any] = {}
        for b in self.bands:
            for prod in ("image", "invvar", "psfsize"):
                e = self._load(brickname, prod, b)
                planes[(prod, b)] = e
                available[f"{prod}_{b}"] = isinstance(e, _Plane)
                if isinstance(e, _ReadError):
                    problems.append(e.message)
        mb = self._load(brickname, "maskbits", None)
        available["maskbits"] = isinstance(mb, _Plane)
        available["wisemask"] = isinstance(mb, _Plane) and any(x is not None for x in mb.extra)
        if isinstance(mb, _ReadError):
            problems.append(mb.message)

        def result(x0: int, y0: int, off: tuple[float, float], host: tuple[float, float],
                   maskbits: np.ndarray | None = None, wise: np.ndarray | None = None) -> Cutout:
            probs = sorted(dict.fromkeys(problems), key=lambda p: _REASON_ORDER.index(p.split(":")[0]))
            return Cutout(ok=not probs, reason=probs[0] if probs else None, brickname=brickname, size=size,
                          bands=self.bands, image=image, invvar=invvar, maskbits=maskbits, wisemask=wise,
                          psfsize_at_host=psf_host, offset_pix=off, x0=x0, y0=y0, available=available,
                          host_pix=host, problems=probs, notes=notes)

        ref = next((planes[("image", b)] for b in self.bands if isinstance(planes[("image", b)], _Plane)),
                   None)
        if ref is None:
            if not any(available[f"{p}_{b}"] for p in ("image", "invvar") for b in self.bands) and not problems:
                problems.append("brick_missing")
            elif not problems:
                problems.append("band_missing:" + ",".join(self.bands))
            return result(0, 0, (math.nan, math.nan), (math.nan, math.nan))

        ny, nx = ref.data.shape
        try:
            x, y = _sky_to_pixel(ref.wcs, float(ra), float(dec))
        except Exception as exc:  # noqa: BLE001 - a broken header is a per-row failure
            problems.append(f"read_error:{layout.coadd_path(self.root, brickname, 'image', self.bands[0])}: "
                            f"bad WCS: {exc}")
            return result(0, 0, (math.nan, math.nan), (math.nan, math.nan))
        if not (math.isfinite(x) and math.isfinite(y)):
            problems.append("off_image")
            return result(0, 0, (math.nan, math.nan), (x, y))
        ix, iy = math.floor(x + 0.5), math.floor(y + 0.5)
        half = size // 2
        x0, y0 = ix - half, iy - half
        off = (x - ix, y - iy)
        # overlap of the stamp with the image
        sx0, sy0 = max(x0, 0), max(y0, 0)
        sx1, sy1 = min(x0 + size, nx), min(y0 + size, ny)
        if sx0 >= sx1 or sy0 >= sy1:
            problems.append("off_image")
            return result(x0, y0, off, (x, y))
        if (sx0, sy0, sx1, sy1) != (x0, y0, x0 + size, y0 + size):
            problems.append("off_image")
        dst = (slice(sy0 - y0, sy1 - y0), slice(sx0 - x0, sx1 - x0))
        src = (slice(sy0, sy1), slice(sx0, sx1))
        host_inside = 0 <= ix < nx and 0 <= iy < ny

        loaded: list[int] = []
        for i, b in enumerate(self.bands):
            img, ivr, psf = planes[("image", b)], planes[("invvar", b)], planes[("psfsize", b)]
            for name, e in (("image", img), ("invvar", ivr), ("psfsize", psf)):
                if isinstance(e, _Plane) and e.data.shape != (ny, nx):
                    problems.append(f"wcs_mismatch:{name}_{b} shape {e.data.shape} != image {(ny, nx)}")
                    planes[(name, b)] = _Missing()
            img, ivr, psf = planes[("image", b)], planes[("invvar", b)], planes[("psfsize", b)]
            if not (isinstance(img, _Plane) and isinstance(ivr, _Plane)):
                if not any(p.startswith("read_error") for p in problems):
                    problems.append(f"band_missing:{b}")
                continue
            image[i][dst] = img.data[src]
            invvar[i][dst] = ivr.data[src]
            loaded.append(i)
            if isinstance(psf, _Plane) and host_inside:
                v = float(psf.data[iy, ix])
                psf_host[i] = v if (math.isfinite(v) and v > 0) else math.nan
            elif not isinstance(psf, _Plane):
                notes.append(f"psfsize_missing:{b}")

        # (non-finite pixels and bands without data, checked on the whole cube first)
        if loaded and not (np.isfinite(image).all() and np.isfinite(invvar).all()):
            for i in loaded:
                bad = ~np.isfinite(image[i]) | ~np.isfinite(invvar[i])
                if bad.any():
                    problems.append(f"nan_pixels:{self.bands[i]}")
                    image[i][bad] = 0.0
                    invvar[i][bad] = 0.0
        has_data = (invvar > 0).any(axis=(1, 2))
        problems.extend(f"no_data:{self.bands[i]}" for i in loaded if not has_data[i])
        maskbits = wise = None
        if isinstance(mb, _Plane):
            if mb.data.shape != (ny, nx):
                problems.append(f"wcs_mismatch:maskbits shape {mb.data.shape} != image {(ny, nx)}")
            else:
                maskbits = np.zeros((size, size), dtype=np.int32)
                maskbits[dst] = mb.data[src]
                if any(w is not None for w in mb.extra):
                    wise = np.zeros((size, size), dtype=np.uint8)
                    for bit, w in enumerate(mb.extra):
                        if w is not None:
                            wise[dst] |= ((w[src] != 0).astype(np.uint8) << bit)
                else:
                    notes.append("wisemask_missing")
        elif isinstance(mb, _Missing):
            notes.append("maskbits_missing")
        return result(x0, y0, off, (x, y), maskbits, wise)


def _sky_to_pixel(wcs: Any, ra: float, dec: float) -> tuple[float, float]:
    """0-based pixel (x, y) of (ra, dec) in degrees: wcslib's projection directly when the WCS has no
    distortion terms (the value astropy's all_world2pix returns then, without its per-call set-up), else
    all_world2pix."""
    if not wcs.has_distortion:
        pix = wcs.wcs.s2p(np.array([[ra, dec]], dtype=np.float64), 0)["pixcrd"][0]
        return float(pix[0]), float(pix[1])
    x, y = wcs.all_world2pix(ra, dec, 0)
    return float(x), float(y)


@lru_cache(maxsize=8)
def shared_store(root: str, cache_bytes: int = 2_000_000_000, s3_endpoint_url: str | None = None,
                 s3_region: str | None = None, bands: tuple[str, ...] = ("g", "r", "z"),
                 neighbour_fallback: bool = False) -> CoaddStore:
    """One :class:`CoaddStore` per process and argument set, so that Spark tasks running in the same
    Python worker share its cache."""
    return CoaddStore(root, cache_bytes=cache_bytes, s3_endpoint_url=s3_endpoint_url, s3_region=s3_region,
                      bands=tuple(bands), neighbour_fallback=neighbour_fallback)
