"""Cutouts of positives and sampled negatives, their quality metrics, and the cutout-service client.

Two sources: the coadd store (:class:`dhs.survey.coadd.CoaddStore`, local or S3: image, invvar and
maskbits) or the Legacy Surveys cutout service over HTTP (:class:`CutoutServiceClient`: images only, no
invvar or maskbits). A cutout that cannot be made is a row with ``cutout_ok = 0`` and an ``error`` reason,
never an exception.

Quality metrics (:func:`quality_metrics`) of a (bands, H, W) stamp in nanomaggies per pixel, with ``valid``
pixels those with a finite value and (when invvar is known) invvar > 0:
``nan_frac`` / ``nan_frac_central`` — fraction of pixels without valid data over the whole stamp / in the
central box; ``bands_present`` — bands with any valid pixel, as a string such as "grz"; per band
``core_flux_<b>`` (sum over r < core radius, nMgy), ``annulus_median_<b>`` (median over the annulus,
nMgy/pix), ``outer_median_<b>`` and ``outer_mad_<b>`` (median and 1.4826·MAD over r ≥ 0.75·H/2).
Radii are in pixels from the central pixel (H // 2, W // 2).
"""

from __future__ import annotations

import io
import math
import urllib.error
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dhs.completeness.audit import radial_distance, shortcut_features
from dhs.io.http import get_with_retries

BANDS = ("g", "r", "z")


def quality_metrics(image: np.ndarray, invvar: np.ndarray | None = None, bands: Sequence[str] = BANDS,
                    core_radius_pix: float = 4.0, annulus_pix: tuple[float, float] = (8.0, 16.0),
                    central_box_pix: int = 16) -> dict[str, Any]:
    """Quality metrics of one stamp (see module docstring)."""
    a = np.asarray(image, dtype=np.float64)
    if a.ndim != 3 or a.shape[0] != len(bands):
        raise ValueError(f"image must have shape ({len(bands)}, H, W), got {a.shape}")
    h, w = a.shape[1:]
    valid = np.isfinite(a)
    if invvar is not None:
        iv = np.asarray(invvar, dtype=np.float64)
        valid &= np.isfinite(iv) & (iv > 0)
    data = np.where(valid, a, np.nan)
    r = radial_distance(h, w)
    half = max(1, int(central_box_pix)) // 2
    cy, cx = h // 2, w // 2
    box = (slice(max(cy - half, 0), cy + half + 1), slice(max(cx - half, 0), cx + half + 1))
    out: dict[str, Any] = {
        "nan_frac": float(1.0 - valid.mean()),
        "nan_frac_central": float(1.0 - valid[:, box[0], box[1]].mean()),
        "bands_present": "".join(b for i, b in enumerate(bands) if valid[i].any()),
    }
    core = r < core_radius_pix
    ann = (r >= annulus_pix[0]) & (r < annulus_pix[1])
    outer = r >= 0.75 * min(h, w) / 2.0
    for i, b in enumerate(bands):
        d = data[i]
        out[f"core_flux_{b}"] = float(np.nansum(d[core])) if np.isfinite(d[core]).any() else math.nan
        for name, sel in (("annulus", ann), ("outer", outer)):
            v = d[sel]
            v = v[np.isfinite(v)]
            out[f"{name}_median_{b}"] = float(np.median(v)) if v.size else math.nan
            if name == "outer":
                out[f"outer_mad_{b}"] = float(1.4826 * np.median(np.abs(v - np.median(v)))) if v.size else math.nan
    return out


def metric_names(bands: Sequence[str] = BANDS) -> list[str]:
    """Names of the numeric metrics :func:`quality_metrics` returns (``bands_present`` is a string)."""
    names = ["nan_frac", "nan_frac_central"]
    for b in bands:
        names += [f"core_flux_{b}", f"annulus_median_{b}", f"outer_median_{b}", f"outer_mad_{b}"]
    return names


def feature_row(image: np.ndarray, bands: Sequence[str] = BANDS, core_radius_pix: float = 4.0) -> dict[str, float]:
    """The shortcut-audit features (:func:`dhs.completeness.audit.shortcut_features`) of one stamp, named
    ``feat_<feature>``."""
    f = shortcut_features(np.asarray(image, dtype=np.float64)[None], tuple(bands), core_radius_pix=core_radius_pix)
    return {f"feat_{k}": float(v[0]) for k, v in f.items()}


# --------------------------------------------------------------------------------- cutout service
@dataclass
class ServiceCutout:
    """A cutout from the HTTP service: ``image`` (bands, size, size) float32 nMgy/pixel or None,
    ``ok``, ``reason`` (None or why it failed), ``attempts`` made."""

    ok: bool
    reason: str | None
    image: np.ndarray | None
    attempts: int


class CutoutServiceClient:
    """Client of the Legacy Surveys cutout service (``.../viewer/cutout.fits?ra=&dec=&layer=&pixscale=
    &size=&bands=``), using :func:`dhs.io.http.get_with_retries`.

    Retried: connection errors, timeouts, HTTP 429 and 5xx, and unreadable FITS bodies, up to ``retries``
    times after the first attempt with ``backoff_s · 2^k`` seconds between attempts. Not retried: other
    HTTP 4xx. Returns :class:`ServiceCutout`; never raises for a failed request.
    """

    def __init__(self, base_url: str, layer: str = "ls-dr10", retries: int = 3, timeout_s: float = 30.0,
                 backoff_s: float = 1.0, pixscale: float = 0.262, bands: Sequence[str] = BANDS) -> None:
        if retries < 0 or timeout_s <= 0 or backoff_s < 0:
            raise ValueError(f"need retries ≥ 0, timeout_s > 0, backoff_s ≥ 0; got {retries}, {timeout_s}, {backoff_s}")
        self.base_url = base_url
        self.layer = layer
        self.retries = int(retries)
        self.timeout_s = float(timeout_s)
        self.backoff_s = float(backoff_s)
        self.pixscale = float(pixscale)
        self.bands = tuple(bands)

    def url(self, ra: float, dec: float, size: int) -> str:
        """The request URL for a cutout centred on (ra, dec) [deg] of ``size`` pixels."""
        q = urllib.parse.urlencode({"ra": f"{float(ra):.8f}", "dec": f"{float(dec):.8f}", "layer": self.layer,
                                    "pixscale": f"{self.pixscale:g}", "size": int(size),
                                    "bands": "".join(self.bands)})
        sep = "&" if "?" in self.base_url else "?"
        return f"{self.base_url}{sep}{q}"

    def _decode(self, body: bytes, size: int) -> np.ndarray:
        from astropy.io import fits

        with fits.open(io.BytesIO(body)) as hdul:
            hdu = next((x for x in hdul if getattr(x, "data", None) is not None), None)
            if hdu is None:
                raise ValueError("no image data in the FITS response")
            data = np.asarray(hdu.data, dtype=np.float32)
        if data.ndim == 2:
            data = data[None]
        want = (len(self.bands), size, size)
        if data.shape != want:
            raise ValueError(f"FITS response has shape {data.shape}, expected {want}")
        return data

    def fetch(self, ra: float, dec: float, size: int) -> ServiceCutout:
        """Download one cutout (see class docstring)."""
        url = self.url(ra, dec, size)
        got = get_with_retries(url, lambda resp: self._decode(resp.read(), size), retries=self.retries,
                               backoff_s=self.backoff_s, timeout_s=self.timeout_s, describe=_describe_failure,
                               retry_on=(urllib.error.URLError, TimeoutError, OSError, ValueError))
        if got.ok:
            return ServiceCutout(True, None, got.value, got.attempts)
        if got.final:
            return ServiceCutout(False, f"service_error:{got.error}: {url}", None, got.attempts)
        return ServiceCutout(False, f"service_error:{got.error} after {got.attempts} attempts: {url}", None,
                             got.attempts)


def _describe_failure(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"http_{exc.code}"
    if isinstance(exc, (urllib.error.URLError, TimeoutError, OSError)):
        return f"connection: {getattr(exc, 'reason', exc)}"
    return f"bad_response: {exc}"


# --------------------------------------------------------------------------------- one output row
def cutout_columns(bands: Sequence[str] = BANDS) -> list[tuple[str, str]]:
    """(name, kind) of the columns :func:`cutout_row` adds; kind in {int, float, str, binary}."""
    cols = [("cutout_ok", "int"), ("error", "str"), ("cutout_source", "str"), ("stamp_size", "int"),
            ("stamp", "binary"), ("invvar", "binary"), ("maskbits_stamp", "binary"), ("bands_present", "str"),
            ("psfsize_at_host_r", "float")]
    cols += [(m, "float") for m in metric_names(bands)]
    cols += [(f"feat_{k}", "float") for k in (*[f"central_flux_{b}" for b in bands], "total_flux",
                                             "central_g_minus_r", "outer_noise_mad_r")]
    return cols


def _empty(bands: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, kind in cutout_columns(bands):
        out[name] = math.nan if kind == "float" else None
    return out


def cutout_row(ra: float, dec: float, brickname: str | None, size: int, *, store: Any = None,
               client: CutoutServiceClient | None = None, keep_invvar: bool = True, keep_maskbits: bool = True,
               core_radius_pix: float = 4.0, annulus_pix: tuple[float, float] = (8.0, 16.0),
               central_box_pix: int = 16) -> dict[str, Any]:
    """Cut one stamp (from ``store``, a :class:`~dhs.survey.coadd.CoaddStore`, or ``client``) and return the
    columns of :func:`cutout_columns`: ``stamp``/``invvar`` float32 (3, size, size) bytes
    (:func:`dhs.io.stamps.encode`), ``maskbits_stamp`` int32 (size, size) bytes, quality metrics and the
    shortcut features. Failures give ``cutout_ok = 0``, ``error`` = reason, null arrays and NaN metrics."""
    from dhs.io.stamps import encode, encode_mask

    bands = tuple(store.bands) if store is not None else (client.bands if client is not None else BANDS)
    out = _empty(bands)
    out["stamp_size"] = int(size)
    image: np.ndarray | None
    invvar: np.ndarray | None = None
    try:
        if store is not None:
            out["cutout_source"] = "coadd"
            cut = store.cutout(float(ra), float(dec), size=int(size), brickname=brickname or None)
            if not cut.ok:
                out["cutout_ok"], out["error"] = 0, cut.reason or "cutout_failed"
                return out
            image, invvar = cut.image, cut.invvar
            if keep_maskbits and cut.maskbits is not None:
                out["maskbits_stamp"] = encode_mask(cut.maskbits)
            ri = list(bands).index("r") if "r" in bands else 0
            out["psfsize_at_host_r"] = float(cut.psfsize_at_host[ri])
        elif client is not None:
            out["cutout_source"] = "service"
            sc = client.fetch(float(ra), float(dec), int(size))
            if not sc.ok:
                out["cutout_ok"], out["error"] = 0, sc.reason
                return out
            image = sc.image
        else:
            raise ValueError("cutout_row needs a store or a client")
    except Exception as exc:  # noqa: BLE001 - one bad row must not stop the job
        out["cutout_ok"], out["error"] = 0, f"read_error:{type(exc).__name__}: {exc}"[:500]
        return out
    assert image is not None
    out["cutout_ok"] = 1
    out["stamp"] = encode(image)
    if keep_invvar and invvar is not None:
        out["invvar"] = encode(invvar)
    out.update(quality_metrics(image, invvar, bands, core_radius_pix, annulus_pix, central_box_pix))
    clean = np.where(np.isfinite(image), image, np.nan)
    if invvar is not None:
        clean = np.where(invvar > 0, clean, np.nan)
    out.update(feature_row(clean, bands, core_radius_pix))
    return out
