"""Build a COSMOS real-galaxy source bank from a GalSim ``RealGalaxyCatalog``.

Input: a RealGalaxyCatalog FITS file (e.g. ``real_galaxy_catalog_25.2.fits`` as downloaded by GalSim's
``galsim_download_cosmos``) or the folder holding it. The only layout assumed is GalSim's: the catalogue
columns IDENT, MAG, GAL_FILENAME/GAL_HDU, PSF_FILENAME/PSF_HDU, PIXEL_SCALE, NOISE_* and, optionally, the
companion ``<catalogue>_fits.fits`` table beside it (photo-z, and g/r/z magnitudes when it has them, e.g.
the HSC_g/HSC_r/HSC_z columns of the BlendingToolKit extension). Galaxies are matched to that table by IDENT.

What is drawn, and why
----------------------
* **Real images.** Each galaxy is ``galsim.RealGalaxy(catalog, index=i)``: GalSim's interpolated HST image
  *deconvolved by the galaxy's own HST PSF* (the PSF image stored in the catalogue).
* **HST PSF.** A deconvolved real galaxy can only be drawn after convolution with a target PSF at least as
  large as the original one (GalSim: "simulate new galaxy images with a different (must be larger)
  telescope PSF"); otherwise the deconvolution amplifies noise at high spatial frequencies. The bank is
  meant to be rendered at ground-based resolution (DECaLS seeing ≈ 1–1.5″ at 0.262″/pix), so we convolve
  with a small, round, *known* Gaussian of FWHM ``target_psf_fwhm`` (default 0.12″; the catalogue's
  ACS/F814W PSF images have FWHM ≈ 0.10″) and draw with pixel integration at ``pixscale``. Measured on
  the 100-galaxy example catalogue, the sky noise of the drawn image relative to the original HST image
  is 1.0 at 0.12″ (median; max 1.1), but 1.7 at 0.10″ and 4.3 at 0.08″: the deconvolution blows up the
  noise when the target PSF is not larger than the original. The template is then the galaxy
  seen through that Gaussian; seeing of FWHM F broadens it by a negligible (0.12/F)²/2 ≈ 0.4 % at F = 1.3″,
  and the anisotropic, position-dependent HST PSF is replaced by an isotropic one.
* **Correlated noise.** HST stamps carry sky noise, correlated by the drizzling and further shaped by the
  de-/re-convolution. We do *not* whiten it (whitening *adds* noise, the wrong trade for noiseless injection
  templates) and we do not pad with noise. Instead (``noise="mask"``, the default) we denoise:
  1. the drawn image is smoothed with a Gaussian of σ = ``detect_smooth_arcsec``; pixels above
     ``detect_nsigma`` × the sigma-clipped noise of the smoothed image (measured inside the original HST
     stamp), connected to the galaxy at the stamp centre, grown by ``footprint_grow_arcsec``, form the
     footprint; everything outside it (sky noise, detached neighbours) is set to 0;
  2. inside the footprint, the part of the image where the smoothed image is below ``core_nsigma`` × its
     noise is smoothed with the same Gaussian and added back to the unsmoothed bright part (adaptive,
     flux-conserving smoothing: the faint outskirts, which ground-based seeing blurs anyway, carry several
     times less noise; the bright structure keeps full HST resolution);
  3. negative pixels are clipped to 0 (templates are non-negative surface brightness).
  Optionally (``subtract_background``) a residual sky level, the clipped median outside the detections, is
  subtracted first; it is off by default because GalSim's COSMOS stamps are sky-subtracted and small, so
  that estimate is dominated by the galaxy's own wings. The defaults were chosen against a known truth
  (Sersic galaxies, n = 0.6–3, convolved with a real COSMOS PSF, white HST-like noise, written in
  the RealGalaxyCatalog layout; see tests/cosmos/test_known_truth.py): rendered with a 1.3″ Moffat, the
  templates match the truth to ≤ 2 % of the peak for S/N ≳ 120 (≤ 1 % at S/N ≳ 400), and to 2–5 % at
  S/N ≈ 50 where wings below the noise are lost (half-light radii then come out up to ~5 % small). A
  tighter footprint loses the wings of high-n galaxies (4–5 % of the peak even at high S/N); a looser one
  adds clipped noise. ``noise="none"`` keeps every pixel and only clips negatives (biased high for faint
  galaxies; for comparisons).
* **Centring and normalisation.** The light centroid of the masked image is moved to the stamp centre by
  shifting the GalSim profile and redrawing (the shift is recorded as ``recentre_dx/dy_arcsec``). The
  template is normalised to unit total flux (float64 sum, stored as float32).
* **Measurements.** ``hlr_arcsec``: circular half-light radius about the light centroid
  (:func:`half_light_radius`); ``clumpiness``: :func:`clumpiness`; ``edge_flux_frac``: flux fraction within
  ``edge_width_arcsec`` of the stamp border and ``stamp_flux_frac``: fraction of the whole HST stamp's
  flux that lands inside the bank stamp (truncation indicators); ``snr``: footprint flux over the noise
  summed over the footprint pixels (white-noise approximation).
* **Cuts.** ``hlr_min ≤ hlr_arcsec ≤ hlr_max``, ``edge_flux_frac ≤ max_edge_flux_frac`` and
  ``stamp_flux_frac ≥ min_stamp_flux_frac`` (else "truncated"), ``snr ≥ min_snr``,
  optional F814W magnitude range; galaxies with no detection at the centre are rejected. Reject counts by
  reason are returned in :class:`BuildResult`.
* **Determinism and resumption.** Galaxies are visited in the order of ``xxhash64(IDENT, seed)``; nothing
  else is random. Progress is checkpointed every ``checkpoint_every`` visited galaxies into
  ``<out>.ckpt/``; an interrupted build restarts from its last checkpoint (same parameters required).
  ``n`` is the number of *kept* templates (``None``: all that pass). Templates are stored in visiting
  order (``catalog_index`` gives each one's catalogue row); the bank is written part by part, so a
  production build (~87,000 galaxies) never holds all templates in memory.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from astropy.io import fits
from astropy.stats import sigma_clipped_stats
from scipy import ndimage

from dhs.cosmos.bank import META_COLUMNS, write_bank
from dhs.sampling.hashing import hash64_array

NoiseMode = Literal["mask", "none"]

# Candidate column names (case-insensitive) in the companion ``*_fits.fits`` table.
_BAND_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("hsc", "hsc_g", "hsc_r", "hsc_z"),
    ("des", "mag_g", "mag_r", "mag_z"),
    ("legacy", "g", "r", "z"),
)
_PHOTOZ_COLUMNS = ("zphot", "photo_z", "z_phot", "photoz")
_REQUIRED_CATALOG_COLUMNS = ("IDENT", "GAL_FILENAME", "PSF_FILENAME", "GAL_HDU", "PSF_HDU")


class CatalogError(ValueError):
    """A catalogue path or its files cannot be used (message names the file/column)."""


@dataclass
class BuildParams:
    """All parameters that determine a bank's content (stored as the ``build_params`` attribute)."""

    n: int | None = None
    seed: int = 0
    stamp_size: int = 96
    pixscale: float = 0.03
    hlr_min: float = 0.1
    hlr_max: float = 1.0
    target_psf_fwhm: float = 0.12
    noise: NoiseMode = "mask"
    detect_nsigma: float = 1.0
    detect_smooth_arcsec: float = 0.10
    footprint_grow_arcsec: float = 0.30
    edge_width_arcsec: float = 0.09
    max_edge_flux_frac: float = 0.02
    min_snr: float = 10.0
    mag_min: float | None = None
    mag_max: float | None = None
    subtract_background: bool = False
    core_nsigma: float = 10.0
    min_stamp_flux_frac: float = 0.97

    def validate(self) -> None:
        if self.n is not None and self.n < 1:
            raise ValueError(f"n must be >= 1 or None, got {self.n}")
        if self.stamp_size < 8:
            raise ValueError(f"stamp_size must be >= 8 pixels, got {self.stamp_size}")
        for name in ("pixscale", "target_psf_fwhm", "detect_nsigma", "detect_smooth_arcsec"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.hlr_min < self.hlr_max:
            raise ValueError(f"need 0 <= hlr_min < hlr_max, got {self.hlr_min}, {self.hlr_max}")
        if self.noise not in ("mask", "none"):
            raise ValueError(f"noise must be 'mask' or 'none', got {self.noise!r}")

    def digest(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


@dataclass
class BuildResult:
    """Summary of a build: output path, number kept, galaxies visited, reject counts by reason."""

    out: str
    n_kept: int
    n_visited: int
    n_catalog: int
    rejects: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    resumed_from: int = 0


# ------------------------------------------------------------------------------------------ catalogue
def resolve_catalog(catalog: str | os.PathLike[str]) -> tuple[str, str]:
    """Return ``(catalogue file, image folder)`` for a RealGalaxyCatalog file or a folder holding one.

    A folder must contain exactly one ``real_galaxy_catalog_*.fits`` (companion ``*_fits.fits`` and
    ``*_selection.fits`` tables are ignored); if several are present, the 25.2 sample is preferred.
    """
    path = os.fspath(catalog)
    if not os.path.exists(path):
        raise CatalogError(f"COSMOS catalogue path does not exist: {path}")
    if os.path.isdir(path):
        cands = sorted(
            p for p in glob.glob(os.path.join(path, "real_galaxy_catalog_*.fits"))
            if not p.endswith(("_fits.fits", "_selection.fits"))
        )
        if not cands:
            raise CatalogError(f"no real_galaxy_catalog_*.fits in COSMOS folder {path}")
        if len(cands) > 1:
            pref = [p for p in cands if "25.2" in os.path.basename(p)]
            if len(pref) != 1:
                raise CatalogError(f"several catalogues in {path}: {[os.path.basename(c) for c in cands]}; "
                                   "pass the catalogue file instead of the folder")
            cands = pref
        return cands[0], path
    return path, os.path.dirname(os.path.abspath(path))


def check_catalog_files(cat_file: str, image_dir: str) -> fits.FITS_rec:
    """Read the catalogue table and verify that every image/PSF/noise file it names exists.

    Raises :class:`CatalogError` naming the catalogue, the missing column or the missing files (with the
    first row that needs each one).
    """
    try:
        with fits.open(cat_file, memmap=False) as hdul:
            data = hdul[1].data
            cols = {c.upper() for c in data.columns.names}
            data = data.copy()
    except Exception as exc:
        raise CatalogError(f"cannot read RealGalaxyCatalog table from {cat_file} (HDU 1): {exc}") from exc
    missing_cols = [c for c in _REQUIRED_CATALOG_COLUMNS if c not in cols]
    if missing_cols:
        raise CatalogError(f"{cat_file} is not a GalSim RealGalaxyCatalog: missing columns {missing_cols}")
    missing: dict[str, int] = {}
    for col in ("GAL_FILENAME", "PSF_FILENAME", "NOISE_FILENAME"):
        if col not in cols:
            continue
        names = np.char.strip(np.asarray(data[col]).astype(str))
        for name in np.unique(names):
            if name and not os.path.isfile(os.path.join(image_dir, name)):
                missing.setdefault(f"{name} ({col})", int(np.flatnonzero(names == name)[0]))
    if missing:
        lst = ", ".join(f"{k} first needed by row {r}" for k, r in sorted(missing.items()))
        raise CatalogError(f"COSMOS catalogue {cat_file}: files missing from {image_dir}: {lst}")
    return data


def _companion_table(cat_file: str) -> tuple[fits.FITS_rec | None, str | None]:
    stem = cat_file.removesuffix(".fits")
    comp = f"{stem}_fits.fits"
    if not os.path.isfile(comp):
        return None, None
    with fits.open(comp, memmap=False) as hdul:
        return hdul[1].data.copy(), comp


def _col(table: fits.FITS_rec, name: str) -> np.ndarray | None:
    lower = {c.lower(): c for c in table.columns.names}
    c = lower.get(name.lower())
    if c is None:
        return None
    arr = np.asarray(table[c])
    return arr if arr.ndim == 1 else None


def _clean_mag(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64).copy()
    m[~np.isfinite(m) | (m <= 0) | (m > 50)] = np.nan
    return m


def catalog_photometry(cat: fits.FITS_rec, cat_file: str) -> tuple[dict[str, np.ndarray], str]:
    """Per-row F814W mag, photo-z, g/r/z mags and colours from the catalogue and its companion table.

    Returns (columns, colour_source) where colour_source names the magnitude set used ("hsc", ...) or
    "none". Missing values are NaN. Rows are matched to the companion table by IDENT.
    """
    n = len(cat)
    out = {k: np.full(n, np.nan) for k in ("mag_f814w", "photo_z", "mag_g", "mag_r", "mag_z")}
    mag = _col(cat, "MAG")
    if mag is not None:
        out["mag_f814w"] = _clean_mag(mag)
    source = "none"
    comp, comp_path = _companion_table(cat_file)
    if comp is not None:
        cid = _col(comp, "IDENT")
        if cid is None:
            raise CatalogError(f"companion table {comp_path} has no IDENT column to match {cat_file}")
        pos = {int(v): k for k, v in enumerate(cid)}
        ident = np.asarray(cat["IDENT"]).astype(np.int64)
        rows = np.array([pos.get(int(v), -1) for v in ident])
        ok = rows >= 0

        def take(arr: np.ndarray) -> np.ndarray:
            res = np.full(n, np.nan)
            res[ok] = np.asarray(arr, dtype=np.float64)[rows[ok]]
            return res

        for name in _PHOTOZ_COLUMNS:
            z = _col(comp, name)
            if z is not None:
                zz = take(z)
                zz[~(zz >= 0) | (zz > 20)] = np.nan
                out["photo_z"] = zz
                break
        for label, cg, cr, cz in _BAND_COLUMNS:
            g, r, z = _col(comp, cg), _col(comp, cr), _col(comp, cz)
            if g is not None and r is not None and z is not None:
                out["mag_g"], out["mag_r"], out["mag_z"] = (_clean_mag(take(a)) for a in (g, r, z))
                source = label
                break
    out["color_gr"] = out["mag_g"] - out["mag_r"]
    out["color_rz"] = out["mag_r"] - out["mag_z"]
    return out, source


# ---------------------------------------------------------------------------------------- measurements
def light_centroid(image: np.ndarray) -> tuple[float, float]:
    """Flux-weighted centroid (x = column, y = row) in pixels, relative to the array centre ((n-1)/2)."""
    img = np.asarray(image, dtype=np.float64)
    tot = img.sum()
    ny, nx = img.shape
    yy, xx = np.indices(img.shape)
    return (float((img * xx).sum() / tot - (nx - 1) / 2.0), float((img * yy).sum() / tot - (ny - 1) / 2.0))


def half_light_radius(image: np.ndarray, pixscale: float, centre: tuple[float, float] | None = None) -> float:
    """Circular half-light radius in arcsec of a non-negative image (pixscale in arcsec/pixel).

    The radius is measured about ``centre`` (x, y pixels relative to the array centre; default: the light
    centroid). Pixel fluxes are accumulated by the distance of pixel centres, and the radius where the
    cumulative flux crosses half the total is linearly interpolated.
    """
    img = np.asarray(image, dtype=np.float64)
    if centre is None:
        centre = light_centroid(img)
    ny, nx = img.shape
    yy, xx = np.indices(img.shape)
    r = np.hypot(xx - ((nx - 1) / 2.0 + centre[0]), yy - ((ny - 1) / 2.0 + centre[1])).ravel()
    order = np.argsort(r, kind="stable")
    rs = r[order]
    cum = np.cumsum(img.ravel()[order])
    half = 0.5 * cum[-1]
    k = int(np.searchsorted(cum, half))
    if k == 0:
        return float(rs[0] * pixscale)
    f0, f1 = cum[k - 1], cum[k]
    t = 0.0 if f1 == f0 else (half - f0) / (f1 - f0)
    return float((rs[k - 1] + t * (rs[k] - rs[k - 1])) * pixscale)


def clumpiness(image: np.ndarray, hlr_pix: float) -> float:
    """Clumpiness S: flux fraction in small-scale structure, Σ max(I − I_s, 0) / Σ I.

    ``I_s`` is the image smoothed by a Gaussian of σ = 0.25 × hlr (pixels, at least 1); pixels within 0.5 hlr
    of the centroid are excluded from the numerator (the bulge is not a clump), following the idea of
    Conselice (2003). Smooth profiles give S ≈ 0.0–0.05, star-forming clumpy galaxies ≳ 0.1.
    """
    img = np.asarray(image, dtype=np.float64)
    sig = max(0.25 * hlr_pix, 1.0)
    resid = np.clip(img - ndimage.gaussian_filter(img, sig, mode="constant"), 0.0, None)
    cx, cy = light_centroid(img)
    ny, nx = img.shape
    yy, xx = np.indices(img.shape)
    inner = np.hypot(xx - ((nx - 1) / 2.0 + cx), yy - ((ny - 1) / 2.0 + cy)) < 0.5 * hlr_pix
    resid[inner] = 0.0
    return float(resid.sum() / img.sum())


def edge_flux_fraction(image: np.ndarray, width_pix: int) -> float:
    """Fraction of the image flux within ``width_pix`` pixels of the border."""
    img = np.asarray(image, dtype=np.float64)
    w = max(int(width_pix), 1)
    border = np.ones(img.shape, bool)
    border[w:-w, w:-w] = False
    return float(img[border].sum() / img.sum())


# ---------------------------------------------------------------------------------------------- drawing
def galsim_profile(rgc: Any, index: int, params: BuildParams) -> Any:
    """The GalSim profile the bank draws for catalogue row ``index``: RealGalaxy ⊗ target Gaussian."""
    import galsim

    rg = galsim.RealGalaxy(rgc, index=int(index))
    return galsim.Convolve(rg, galsim.Gaussian(fwhm=params.target_psf_fwhm))


def _draw(prof: Any, params: BuildParams) -> np.ndarray:
    im = prof.drawImage(nx=params.stamp_size, ny=params.stamp_size, scale=params.pixscale, method="auto")
    return np.asarray(im.array, dtype=np.float64)


def _footprint(img: np.ndarray, region: np.ndarray,
               params: BuildParams) -> tuple[np.ndarray | None, float, float, float]:
    """Footprint of the central galaxy, noise rms per pixel, residual sky level, noise rms after smoothing.

    ``region`` marks the pixels covered by the original HST stamp (outside it GalSim's interpolated image
    is zero-padded, so noise statistics are taken inside it only). The sky level is the sigma-clipped
    median of the region outside the footprint (0 when ``subtract_background`` is off).
    """
    _, med_raw, sig_raw = sigma_clipped_stats(img[region], sigma=3.0, maxiters=10)
    if params.noise == "none":
        bg = float(med_raw) if params.subtract_background else 0.0
        return np.ones(img.shape, bool), float(sig_raw), bg, 0.0
    sm = ndimage.gaussian_filter(img, params.detect_smooth_arcsec / params.pixscale)
    _, med, sig = sigma_clipped_stats(sm[region], sigma=3.0, maxiters=10)
    det = sm > med + params.detect_nsigma * max(float(sig), 1e-300)
    labels, nlab = ndimage.label(det)
    if nlab == 0:
        return None, float(sig_raw), 0.0, float(sig)
    c = (params.stamp_size - 1) / 2.0
    yy, xx = np.indices(img.shape)
    near = np.hypot(xx - c, yy - c) <= max(2.0, 0.1 / params.pixscale)
    ids = np.unique(labels[near & det])
    if ids.size == 0:
        return None, float(sig_raw), 0.0, float(sig)
    # the component holding most of the central detected light
    flux = [sm[(labels == i) & near].sum() for i in ids]
    mask = labels == ids[int(np.argmax(flux))]
    grow = round(params.footprint_grow_arcsec / params.pixscale)
    if grow > 0:
        mask = ndimage.binary_dilation(mask, iterations=grow)
    bg = 0.0
    if params.subtract_background:
        sky = region & ~ndimage.binary_dilation(det, iterations=max(grow, 1))
        if sky.sum() >= 64:
            bg = float(sigma_clipped_stats(img[sky], sigma=3.0, maxiters=10)[1])
    return mask, float(sig_raw), bg, float(sig)


def _stamp_region(shape: tuple[int, ...], scale: float, dx: float, dy: float,
                  params: BuildParams) -> np.ndarray | None:
    """Bank pixels inside the original HST stamp (shifted by dx, dy arcsec), less a 2-pixel margin.

    None when fewer than 36 pixels remain (too few to measure the noise).
    """
    c = (params.stamp_size - 1) / 2.0
    yy, xx = np.indices((params.stamp_size, params.stamp_size), dtype=np.float64)
    hx = 0.5 * shape[1] * scale / params.pixscale - 2.0
    hy = 0.5 * shape[0] * scale / params.pixscale - 2.0
    reg = (np.abs(xx - c - dx / params.pixscale) <= hx) & (np.abs(yy - c - dy / params.pixscale) <= hy)
    return reg if reg.sum() >= 36 else None


def _clean(img: np.ndarray, mask: np.ndarray, bg: float, sig_sm: float, params: BuildParams) -> np.ndarray:
    """Sky-subtracted image inside the footprint, adaptively smoothed in its faint parts, clipped at 0.

    The faint part (smoothed image below ``core_nsigma`` × its noise ``sig_sm``) is smoothed and added to
    the untouched bright part, which conserves flux; the smoothed outskirts carry several times less noise,
    so clipping negatives there biases the flux far less.
    """
    x = img - bg
    if params.noise == "mask" and params.core_nsigma > 0:
        sig_pix = params.detect_smooth_arcsec / params.pixscale
        core = ndimage.gaussian_filter(x, sig_pix) > params.core_nsigma * sig_sm
        # smooth only the faint part, so that no flux is counted twice at the core boundary
        x = np.where(core, x, 0.0) + ndimage.gaussian_filter(np.where(core, 0.0, x), sig_pix)
    return np.clip(np.where(mask, x, 0.0), 0.0, None)


def render_template(rgc: Any, index: int, params: BuildParams) -> tuple[np.ndarray | None, dict[str, float], str]:
    """Draw, clean, recentre and normalise one galaxy.

    Returns ``(template or None, measurements, reason)``: the unit-flux float64 (H, W) template, a dict
    with hlr_arcsec, clumpiness, snr, edge_flux_frac, footprint_npix, recentre_dx/dy_arcsec, sky_level,
    stamp_flux_frac, and ``""`` or the reject reason ("no_detection", "no_flux", "stamp_too_small").
    """
    prof = galsim_profile(rgc, index, params)
    img = _draw(prof, params)
    shape = rgc.getGalImage(int(index)).array.shape
    scale = float(rgc.pixel_scale[int(index)])
    region = _stamp_region(shape, scale, 0.0, 0.0, params)
    if region is None:
        return None, {}, "stamp_too_small"
    mask, _, bg, sig_sm = _footprint(img, region, params)
    if mask is None:
        return None, {}, "no_detection"
    clean = _clean(img, mask, bg, sig_sm, params)
    if not clean.sum() > 0:
        return None, {}, "no_flux"
    cx, cy = light_centroid(clean)
    dx, dy = -cx * params.pixscale, -cy * params.pixscale
    img = _draw(prof.shift(dx, dy), params)
    region = _stamp_region(shape, scale, dx, dy, params)
    if region is None:
        return None, {}, "stamp_too_small"
    mask, sig, bg, sig_sm = _footprint(img, region, params)
    if mask is None:
        return None, {}, "no_detection"
    clean = _clean(img, mask, bg, sig_sm, params)
    flux = clean.sum()
    if not flux > 0:
        return None, {}, "no_flux"
    tmpl = clean / flux
    hlr = half_light_radius(tmpl, params.pixscale)
    npix = int(mask.sum())
    # flux of the whole (sky-subtracted) HST stamp that lands inside the bank stamp: < 1 means truncation
    n_orig = shape[0] * shape[1] * (scale / params.pixscale) ** 2
    n_in = (min(shape[0] * scale / params.pixscale, params.stamp_size)
            * min(shape[1] * scale / params.pixscale, params.stamp_size))
    info = {
        "hlr_arcsec": hlr,
        "clumpiness": clumpiness(tmpl, hlr / params.pixscale),
        "snr": float(flux / (sig * np.sqrt(npix))) if sig > 0 else float("inf"),
        "edge_flux_frac": edge_flux_fraction(tmpl, round(params.edge_width_arcsec / params.pixscale)),
        "stamp_flux_frac": float((img.sum() - bg * n_in) / (prof.flux - bg * n_orig)),
        "footprint_npix": npix,
        "sky_level": bg,
        "recentre_dx_arcsec": float(dx),
        "recentre_dy_arcsec": float(dy),
    }
    return tmpl, info, ""


def _cut_reason(info: dict[str, float], mag: float, params: BuildParams) -> str:
    if not params.hlr_min <= info["hlr_arcsec"] <= params.hlr_max:
        return "hlr_out_of_range"
    if (info["edge_flux_frac"] > params.max_edge_flux_frac
            or info["stamp_flux_frac"] < params.min_stamp_flux_frac):
        return "truncated"
    if not info["snr"] >= params.min_snr:
        return "low_snr"
    if params.mag_min is not None and not mag >= params.mag_min:
        return "mag_out_of_range"
    if params.mag_max is not None and not mag <= params.mag_max:
        return "mag_out_of_range"
    return ""


# ---------------------------------------------------------------------------------------------- build
def visit_order(idents: np.ndarray, seed: int) -> np.ndarray:
    """Catalogue rows in the deterministic visiting order: by xxhash64(IDENT, seed), ties by row."""
    h = hash64_array([str(int(v)) for v in idents], seed=seed)
    return np.lexsort((np.arange(len(idents)), h))


def _save_part(path: str, **arrays: Any) -> None:
    tmp = f"{path}.tmp.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


class _PartStack:
    """The kept templates of all checkpoint parts, read part by part (never all in memory at once)."""

    def __init__(self, parts: list[tuple[str, int]], n: int, size: int) -> None:
        self.parts = [(p, k) for p, k in parts if k > 0]
        self.starts = np.cumsum([0] + [k for _, k in self.parts])
        self.shape = (n, size, size)
        self.ndim = 3
        self._cache: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def _part(self, j: int) -> np.ndarray:
        if self._cache is None or self._cache[0] != j:
            with np.load(self.parts[j][0]) as z:
                self._cache = (j, z["images"])
        return self._cache[1]

    def __getitem__(self, sl: slice) -> np.ndarray:
        start, stop, _ = sl.indices(self.shape[0])
        out = np.empty((max(stop - start, 0), self.shape[1], self.shape[2]), np.float32)
        i = start
        while i < stop:
            j = int(np.searchsorted(self.starts, i, side="right") - 1)
            take = min(stop, int(self.starts[j + 1])) - i
            off = i - int(self.starts[j])
            out[i - start: i - start + take] = self._part(j)[off: off + take]
            i += take
        return out


def build_bank(
    catalog: str | os.PathLike[str],
    out: str | os.PathLike[str],
    n: int | None = None,
    seed: int = 0,
    stamp_size: int = 96,
    pixscale: float = 0.03,
    hlr_min: float = 0.1,
    hlr_max: float = 1.0,
    *,
    target_psf_fwhm: float = 0.12,
    noise: NoiseMode = "mask",
    max_edge_flux_frac: float = 0.02,
    min_snr: float = 10.0,
    mag_min: float | None = None,
    mag_max: float | None = None,
    checkpoint_every: int = 500,
    restart: bool = False,
    keep_checkpoints: bool = False,
    progress: Callable[[int, int, int], None] | None = None,
    created_utc: str | None = None,
    **tuning: Any,
) -> BuildResult:
    """Build a bank file at ``out`` from a RealGalaxyCatalog file or folder (see the module docstring).

    ``out`` is a local path (upload the finished file to S3 if the stages read it from there).
    Parameters (units): ``stamp_size`` pixels; ``pixscale``, ``hlr_min``, ``hlr_max``, ``target_psf_fwhm``
    arcsec; ``n`` templates kept (None = all passing); ``seed`` fixes the visiting order;
    ``checkpoint_every`` galaxies visited between checkpoints; ``restart`` discards existing checkpoints;
    ``progress(visited, kept, total)`` is called after each checkpoint; ``created_utc`` overrides the
    creation-time attribute (for reproducible files). ``tuning`` sets further :class:`BuildParams` fields
    (``detect_nsigma``, ``detect_smooth_arcsec``, ``footprint_grow_arcsec``, ``core_nsigma``,
    ``edge_width_arcsec``, ``min_stamp_flux_frac``, ``subtract_background``).
    """
    import galsim

    t0 = time.time()
    params = BuildParams(n=n, seed=seed, stamp_size=stamp_size, pixscale=pixscale, hlr_min=hlr_min,
                         hlr_max=hlr_max, target_psf_fwhm=target_psf_fwhm, noise=noise,
                         max_edge_flux_frac=max_edge_flux_frac, min_snr=min_snr, mag_min=mag_min,
                         mag_max=mag_max)
    fixed = {"n", "seed", "stamp_size", "pixscale", "hlr_min", "hlr_max", "target_psf_fwhm", "noise",
             "max_edge_flux_frac", "min_snr", "mag_min", "mag_max"}
    for key, value in tuning.items():
        if key in fixed or key not in BuildParams.__dataclass_fields__:
            raise TypeError(f"build_bank: unknown tuning parameter {key!r}")
        setattr(params, key, value)
    params.validate()
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    cat_file, image_dir = resolve_catalog(catalog)
    cat = check_catalog_files(cat_file, image_dir)
    phot, colour_source = catalog_photometry(cat, cat_file)
    idents = np.asarray(cat["IDENT"]).astype(np.int64)
    rgc = galsim.RealGalaxyCatalog(os.path.basename(cat_file), dir=image_dir)
    if rgc.nobjects != len(cat):
        raise CatalogError(f"{cat_file}: GalSim sees {rgc.nobjects} rows, the FITS table {len(cat)}")
    order = visit_order(idents, seed)

    out = os.fspath(out)
    ckpt = f"{out}.ckpt"
    state = {"params": params.digest(), "catalog": os.path.abspath(cat_file), "n_catalog": len(cat),
             "checkpoint_every": checkpoint_every}
    if restart and os.path.isdir(ckpt):
        shutil.rmtree(ckpt)
    os.makedirs(ckpt, exist_ok=True)
    state_path = os.path.join(ckpt, "state.json")
    if os.path.exists(state_path):
        with open(state_path) as fh:
            old = json.load(fh)
        if old != state:
            raise RuntimeError(f"checkpoints in {ckpt} were made with different parameters or catalogue; "
                               "pass restart=True (--restart) to discard them")
    else:
        with open(state_path, "w") as fh:
            json.dump(state, fh, sort_keys=True)

    kept_rows: list[np.ndarray] = []
    kept_parts: list[tuple[str, int]] = []
    kept_info: list[dict[str, np.ndarray]] = []
    rejects: Counter[str] = Counter()
    n_kept = 0
    part = 0
    visited = 0
    resumed = 0
    info_keys = ("hlr_arcsec", "clumpiness", "snr", "edge_flux_frac", "stamp_flux_frac", "footprint_npix",
                 "sky_level", "recentre_dx_arcsec", "recentre_dy_arcsec")
    while visited < len(order) and (n is None or n_kept < n):
        rows = order[visited: visited + checkpoint_every]
        pfile = os.path.join(ckpt, f"part-{part:06d}.npz")
        if os.path.exists(pfile):
            with np.load(pfile) as z:
                if not np.array_equal(z["visited"], rows):
                    raise RuntimeError(f"checkpoint {pfile} does not match the visiting order; use --restart")
                k_rows = z["rows"]  # the images stay on disk until the bank is written
                k_info = {k: z[k] for k in info_keys}
                rejects.update(json.loads(str(z["rejects"])))
            resumed += len(rows)
        else:
            rl: list[int] = []
            il: list[np.ndarray] = []
            inf: list[dict[str, float]] = []
            rj: Counter[str] = Counter()
            for r in rows:
                try:
                    tmpl, info, reason = render_template(rgc, int(r), params)
                except galsim.GalSimError as exc:  # one unusable galaxy must not stop the build
                    tmpl, info, reason = None, {}, f"galsim_error:{type(exc).__name__}"
                if not reason:
                    reason = _cut_reason(info, float(phot["mag_f814w"][r]), params)
                if reason:
                    rj[reason] += 1
                    continue
                rl.append(int(r))
                il.append(tmpl.astype(np.float32))
                inf.append(info)
            k_rows = np.asarray(rl, dtype=np.int64)
            k_info = {k: np.asarray([d[k] for d in inf], dtype=np.float64) for k in info_keys}
            _save_part(pfile, visited=rows, rows=k_rows,
                       images=np.stack(il) if il else np.zeros((0, stamp_size, stamp_size), np.float32),
                       rejects=np.asarray(json.dumps(dict(rj), sort_keys=True)), **k_info)
            rejects.update(rj)
        kept_rows.append(k_rows)
        kept_parts.append((pfile, len(k_rows)))
        kept_info.append(k_info)
        n_kept += len(k_rows)
        visited += len(rows)
        part += 1
        if progress is not None:
            progress(visited, n_kept, len(order))

    rows_all = np.concatenate(kept_rows) if kept_rows else np.zeros(0, np.int64)
    info_all = {k: (np.concatenate([d[k] for d in kept_info]) if kept_info else np.zeros(0)) for k in info_keys}
    if n is not None and len(rows_all) > n:
        surplus = len(rows_all) - n
        rejects["beyond_n"] += surplus
        rows_all = rows_all[:n]
        info_all = {k: v[:n] for k, v in info_all.items()}
    imgs_all = _PartStack(kept_parts, len(rows_all), stamp_size)
    meta: dict[str, np.ndarray] = dict(info_all)
    meta["footprint_npix"] = meta["footprint_npix"].astype(np.int64)
    meta["catalog_index"] = rows_all.astype(np.int64)
    meta["ident"] = idents[rows_all]
    for k in ("mag_f814w", "photo_z", "mag_g", "mag_r", "mag_z", "color_gr", "color_rz"):
        meta[k] = phot[k][rows_all]
    missing = [c for c in META_COLUMNS if c not in meta]
    assert not missing, missing
    attrs = {
        "pixscale_arcsec": pixscale,
        "source_catalog": os.path.abspath(cat_file),
        "colour_source": colour_source,
        "build_params": asdict(params),
        "psf_treatment": f"RealGalaxy (HST PSF deconvolved) convolved with Gaussian FWHM {target_psf_fwhm} arcsec",
        "noise_treatment": noise,
        "n_catalog": len(cat),
    }
    if created_utc:
        attrs["created_utc"] = created_utc
    write_bank(out, imgs_all, meta, attrs, require_columns=True)
    if not keep_checkpoints:
        shutil.rmtree(ckpt, ignore_errors=True)
    return BuildResult(out=out, n_kept=len(rows_all), n_visited=visited, n_catalog=len(cat),
                       rejects=dict(rejects), seconds=time.time() - t0, resumed_from=resumed)
