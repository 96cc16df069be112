"""One stage 4c task: inject the lensed arc of one manifest row into its coadd cutout.

:func:`inject_task` is a pure function of (manifest row, cutout, COSMOS bank, settings): no Spark, no I/O.
It returns a dict holding every manifest column and every stage 4c column (see
:mod:`dhs.injection.schema`); whatever goes wrong becomes ``cutout_ok = 0`` with an ``error`` reason of the
form ``<kind>[:<detail>]`` — it never raises and never drops the row.

Conventions (docs/conventions.md): fluxes in nanomaggies, 0.262″/pixel, stamp channel order g, r, z; the lens sits
at the host's sub-pixel position (``cutout.offset_pix`` from the stamp's centre pixel ``size//2``).
Random draws come from ``task_seed`` only: the COSMOS template, rotation and flip through
:mod:`dhs.cosmos.selection` (xxhash64 with a salt per draw), the arc noise from a PCG64 generator seeded
with xxhash64(task_seed, "arc_noise"); switching one option does not change the other draws.

Metrics (docs/outputs.md) are computed on the noiseless arc, r band, over good pixels (invvar > 0 and none of
the bad MASKBITS): ``arc_snr`` (peak per pixel), ``arc_snr_sum`` (the seed's Σ arc / sqrt(Σ σ²) over every
good pixel), ``arc_snr_sum_footprint`` (the same over the arc's footprint), ``arc_snr_opt`` (matched
filter), see :func:`dhs.core.arc_snr_metrics`; ``magnification`` is the lensed/unlensed flux of the source,
not limited by the stamp; ``total_injected_flux_<b>`` the noiseless arc flux inside the stamp;
``lensed_hlr_arcsec`` the half-light radius of the r-band arc about the lens centre. ``clean`` is 1 when
the cutout is usable and ``bad_pixel_frac`` ≤ ``stage4c.clean_max_bad_pixel_frac`` (the seed's 0.2).

Brightness targeting: a manifest row with ``target_snr`` gets its source flux (all bands, colours kept)
scaled so that the metric named by ``target_snr_metric`` (default ``arc_snr``) equals ``target_snr``
exactly (a hand-made manifest may use ``target_<metric>`` columns instead, see :func:`brightness_target`);
every SNR is linear in the flux, so one render suffices.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from dhs.core import (
    SNR_METRICS,
    SersicSource,
    SIELens,
    arc_snr_metrics,
    lensed_half_light_radius,
    render_lensed_batch,
)
from dhs.injection.fluxes import SourceFluxes, band_fluxes
from dhs.injection.noise import poisson_arc, sky_level_per_pixel
from dhs.injection.psf_choice import PsfChoice, PsfUnavailable, choose_psf
from dhs.injection.schema import ARRAY_COLUMNS, BANDS, RESULT_NAMES
from dhs.io.stamps import encode, encode_mask, encode_npz
from dhs.sampling.hashing import rng_from_seed, stable_hash64
from dhs.survey.maskbits import DEFAULT_BAD_BITS, WISE_MASK, mask_of

R = BANDS.index("r")


class TaskFailure(Exception):
    """A per-row failure; ``reason`` goes into the ``error`` column."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@contextmanager
def _timed(timings: dict[str, float] | None, key: str):
    if timings is None:
        yield
        return
    t0 = time.process_time()
    try:
        yield
    finally:
        timings[key] = timings.get(key, 0.0) + time.process_time() - t0


def _get(row: Mapping[str, Any], key: str, default: Any = None) -> Any:
    v = row.get(key, default)
    return default if v is None else v


def _fnum(row: Mapping[str, Any], key: str, default: float | None = None) -> float | None:
    v = row.get(key)
    if v is None:
        return default
    v = float(v)
    return default if math.isnan(v) else v


def is_control(row: Mapping[str, Any]) -> bool:
    """A control row: ``is_control`` = 1 or ``lens_model`` = "CONTROL"."""
    return bool(_get(row, "is_control", 0)) or str(_get(row, "lens_model", "")).upper() == "CONTROL"


def is_null_injection(row: Mapping[str, Any]) -> bool:
    """A null injection (audit row): ``lens_model`` = "NULL" — the injection path with zero source flux."""
    return str(_get(row, "lens_model", "")).upper() == "NULL"


def sub_rng(task_seed: int, label: str) -> np.random.Generator:
    """An independent generator for one purpose (``label``) of one task."""
    return rng_from_seed(stable_hash64(int(task_seed), label))


def _blank(row: Mapping[str, Any], arrays: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = dict(row)
    for k in RESULT_NAMES:
        out[k] = None
    for k in arrays:
        out[k] = None
    out["theta_e_arcsec"] = 0.0 if is_control(row) else _fnum(row, "theta_e_arcsec")
    out["lens_model"] = "CONTROL" if is_control(row) else row.get("lens_model")
    out["cosmos_index"] = row.get("cosmos_index")
    return out


def failure_row(row: Mapping[str, Any], reason: str, arrays: tuple[str, ...] = ARRAY_COLUMNS) -> dict[str, Any]:
    """A row with every column, ``cutout_ok = 0`` and ``error = reason``; metrics and arrays null."""
    out = _blank(row, arrays)
    out["cutout_ok"] = 0
    out["error"] = reason
    out["clean"] = 0
    return out


def is_clean(bad_pixel_frac: float | None, max_bad_pixel_frac: float) -> int:
    """1 when ``bad_pixel_frac`` (fraction of stamp pixels bad in any band) is ≤ the cut, else 0."""
    return int(bad_pixel_frac is not None and np.isfinite(bad_pixel_frac) and bad_pixel_frac <= max_bad_pixel_frac)


def add_arc(image: np.ndarray, arc: np.ndarray) -> np.ndarray:
    """host + arc as float32; pixels where the float32 arc is exactly 0 keep the host's bits."""
    img = np.asarray(image, dtype=np.float32)
    a32 = np.asarray(arc, dtype=np.float32)
    out = img.copy()
    np.add(img, a32, out=out, where=a32 != 0)
    return out


def _check_cutout(cutout: Any, size: int) -> None:
    if not cutout.ok:
        raise TaskFailure(cutout.reason or "cutout_failed")
    if tuple(cutout.bands) != BANDS:
        raise TaskFailure(f"bands:{''.join(cutout.bands)}")
    if cutout.image.shape != (len(BANDS), size, size):
        raise TaskFailure(f"cutout_shape:{cutout.image.shape}")
    # (whole-cube checks first; the band is looked up only when one fails)
    image_ok = np.isfinite(cutout.image).all()
    invvar_ok = np.isfinite(cutout.invvar).all() and cutout.invvar.min() >= 0
    positive = (cutout.invvar > 0).any(axis=(1, 2))
    if image_ok and invvar_ok and positive.all():
        return
    for b, band in enumerate(BANDS):
        if not np.isfinite(cutout.image[b]).all():
            raise TaskFailure(f"nonfinite_pixels:image_{band}")
        iv = cutout.invvar[b]
        if not np.isfinite(iv).all() or (iv < 0).any():
            raise TaskFailure(f"bad_invvar:{band}")
        if not positive[b]:
            raise TaskFailure(f"zero_invvar:{band}")


def _bad_mask(settings: Any) -> int:
    names = getattr(settings, "bad_maskbits", None)
    return mask_of(names) if names is not None else mask_of(DEFAULT_BAD_BITS)


def pixel_masks(cutout: Any, bad_mask: int) -> tuple[np.ndarray, float | None, float | None]:
    """(good r-band pixels, bad-pixel fraction over all bands or None, WISE bright-star mask fraction or None).

    A pixel is good in a band if its invvar > 0 and it has none of the bad MASKBITS; ``bad_pixel_frac``
    counts pixels bad in any band and is None when the maskbits file is missing (the good pixels then
    follow invvar alone).  The WISE fraction uses the WISEMASK HDUs, else the WISEM1/2 MASKBITS."""
    mb = cutout.maskbits
    ok_bits = np.ones(cutout.invvar.shape[1:], dtype=bool) if mb is None else (np.asarray(mb) & bad_mask) == 0
    good_all = ok_bits & (cutout.invvar > 0).all(axis=0)
    good_r = ok_bits & (cutout.invvar[R] > 0)
    if cutout.wisemask is not None:
        wise: float | None = float(np.mean(np.asarray(cutout.wisemask) != 0))
    elif mb is not None:
        wise = float(np.mean((np.asarray(mb) & WISE_MASK) != 0))
    else:
        wise = None
    return good_r, (None if mb is None else float(1.0 - good_all.mean())), wise


PSF_SOURCE_NOTE = {1: "catalogue", 2: "r_band"}
"""``psf_source`` code → the word used in ``quality_notes`` (0, the psfsize map, is the normal case)."""


def quality_notes(cutout: Any, psf: PsfChoice | None) -> str | None:
    """Non-fatal conditions of a row, ``;``-separated (None when there is nothing to say): the cutout's
    notes (``maskbits_missing``, ``psfsize_missing:<band>``, ``wisemask_missing``, ``from_neighbour_of:<brick>``)
    and PSF fallbacks, e.g. ``psf_fallback:g=catalogue,z=r_band``."""
    notes = [str(n) for n in getattr(cutout, "notes", ())]
    if psf is not None:
        fb = [f"{b}={PSF_SOURCE_NOTE[int(s)]}" for b, s in zip(BANDS, psf.source) if int(s) in PSF_SOURCE_NOTE]
        if fb:
            notes.append("psf_fallback:" + ",".join(fb))
    return ";".join(dict.fromkeys(notes)) or None


def _psf(row: Mapping[str, Any], cutout: Any, settings: Any) -> PsfChoice:
    cat = [_fnum(row, f"psfsize_{b}") for b in BANDS]
    return choose_psf(list(np.asarray(cutout.psfsize_at_host, dtype=float)), cat, BANDS, settings.psf_beta)


def _record_psf(out: dict[str, Any], cutout: Any, psf: PsfChoice | None) -> None:
    for i, b in enumerate(BANDS):
        m = float(cutout.psfsize_at_host[i])
        out[f"psfsize_map_{b}"] = m if np.isfinite(m) else None
        if psf is not None:
            out[f"psfsize_used_{b}"] = float(psf.psfsize[i])
            out[f"psf_fwhm_used_{b}"] = float(psf.fwhm[i])
            out[f"psf_source_{b}"] = int(psf.source[i])


def _source_fluxes(row: Mapping[str, Any], gr: float | None, rz: float | None, targeting: bool) -> SourceFluxes:
    mag_r = _fnum(row, "src_mag_r")
    if mag_r is None and targeting:
        mag_r = 22.5   # 1 nanomaggy reference; rescaled to the target SNR afterwards
    try:
        return band_fluxes(mag_r, gr, rz, _fnum(row, "src_mag_g"), _fnum(row, "src_mag_z"))
    except ValueError as exc:
        raise TaskFailure(f"bad_manifest:{exc}") from None


def brightness_target(row: Mapping[str, Any]) -> tuple[float | None, str, str]:
    """(target SNR or None, SNR metric it applies to, column it came from) of a manifest row.

    Stage 4a writes ``target_snr`` with ``target_snr_metric`` (default ``arc_snr``); a manifest may instead
    carry one ``target_<metric>`` column per metric (e.g. ``target_arc_snr_sum``), which names its metric.
    """
    value = _fnum(row, "target_snr")
    if value is not None:
        return value, str(_get(row, "target_snr_metric", "arc_snr")), "target_snr"
    for metric in SNR_METRICS:
        value = _fnum(row, f"target_{metric}")
        if value is not None:
            return value, metric, f"target_{metric}"
    return None, "arc_snr", "target_snr"


def _sersic(row: Mapping[str, Any], flux_r: float) -> SersicSource:
    reff = _fnum(row, "src_reff_arcsec")
    if reff is None or reff <= 0:
        raise TaskFailure(f"bad_manifest:src_reff_arcsec={row.get('src_reff_arcsec')!r}")
    return SersicSource(flux=flux_r, r_eff=reff, n=_fnum(row, "src_n_sersic", 1.0),
                        e1=_fnum(row, "src_e1", 0.0), e2=_fnum(row, "src_e2", 0.0),
                        x=_fnum(row, "src_x_arcsec", 0.0), y=_fnum(row, "src_y_arcsec", 0.0))


def _cosmos(row: Mapping[str, Any], bank: Any, settings: Any, out: dict[str, Any],
            targeting: bool) -> tuple[Any, SourceFluxes]:
    """COSMOS source of one task via :func:`dhs.cosmos.selection.choose_cosmos_source` (template from
    ``task_seed`` unless the manifest fixes ``cosmos_index``, random rotation and flip, size scale to
    ``src_hlr_target_arcsec``, colours per ``stage4c.cosmos_colours``)."""
    from dhs.cosmos.selection import choose_cosmos_source

    if bank is None:
        raise TaskFailure("cosmos_bank_missing:stage4c.cosmos_bank is not set")
    mag_r = _fnum(row, "src_mag_r")
    if mag_r is None and targeting:
        mag_r = 22.5
    zero = mag_r is not None and mag_r == math.inf
    idx = row.get("cosmos_index")
    try:
        ch = choose_cosmos_source(bank, int(row["task_seed"]), 22.5 if zero else mag_r,
                                  cosmos_index=None if idx is None else int(idx),
                                  target_hlr_arcsec=_fnum(row, "src_hlr_target_arcsec"),
                                  allow_flip=bool(settings.cosmos_flip), colours=settings.cosmos_colours,
                                  manifest_gr=_fnum(row, "src_gr"), manifest_rz=_fnum(row, "src_rz"))
    except (ValueError, IndexError) as exc:
        raise TaskFailure(f"bad_manifest:cosmos: {exc}") from None
    fl = _source_fluxes(dict(row, src_mag_r=mag_r, src_mag_g=None, src_mag_z=None), ch.gr, ch.rz, targeting)
    out.update(cosmos_index=ch.index, src_rotation_rad=ch.angle_rad, src_flip=int(ch.flip), src_scale=ch.scale,
               src_colour_source=ch.colour_source)
    src = ch.source(_fnum(row, "src_x_arcsec", 0.0), _fnum(row, "src_y_arcsec", 0.0), 1.0)
    return src, fl


def inject_task(row: Mapping[str, Any], cutout: Any, bank: Any, settings: Any,
                timings: dict[str, float] | None = None) -> dict[str, Any]:
    """Make the output row of one manifest row (:func:`inject_batch` with one row).

    Parameters
    ----------
    row : manifest row (docs/outputs.md columns; ``task_seed`` int64).
    cutout : :class:`dhs.survey.coadd.Cutout` for the host (size = the row's ``stamp_size``).
    bank : an open COSMOS bank (needed only for ``source_mode = "cosmos"``) or None.
    settings : :class:`dhs.config.stage4c.Stage4cConfig`.
    timings : optional dict accumulating CPU seconds under "render", "metrics" and "encode".

    Returns
    -------
    dict with every manifest column, every column of :data:`dhs.injection.schema.RESULT_NAMES` and the
    array columns (``stamp`` and the kept ``arc``/``invvar``/``maskbits``/``stamp_npz``).
    """
    return inject_batch([row], [cutout], bank, settings, timings)[0]


def inject_batch(rows: Sequence[Mapping[str, Any]], cutouts: Sequence[Any], bank: Any, settings: Any,
                 timings: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Output rows of many manifest rows (same order), their arcs rendered together.

    Each row is prepared (checks, PSF, source) on its own, the arcs of all rows to be injected are
    rendered by one :func:`dhs.core.render_lensed_batch` call per stamp size, then each row is measured
    and encoded.  A row's output is the same whatever batch it is in.  A row that makes the batch call
    fail is rendered again alone; whatever goes wrong in a row becomes that row's failure row.
    """
    keep = tuple(settings.keep_arrays)
    arrays = ("stamp",) + keep + (("stamp_npz",) if settings.stamp_npz else ())
    results: list[dict[str, Any] | None] = [None] * len(rows)
    pending: list[tuple[int, _Pending]] = []
    for i, (row, cutout) in enumerate(zip(rows, cutouts)):
        try:
            prepared = _prepare(row, cutout, bank, settings, arrays, timings)
        except Exception as exc:  # noqa: BLE001 - a row must never crash the job; the reason is recorded
            results[i] = _failure(row, exc, arrays)
            continue
        if isinstance(prepared, _Pending):
            pending.append((i, prepared))
        else:
            results[i] = prepared
    with _timed(timings, "render"):
        rendered = _render_pending([p for _, p in pending], settings)
    for (i, p), res in zip(pending, rendered):
        try:
            if isinstance(res, Exception):
                raise res
            results[i] = _finish(p, res[0], res[1], settings, arrays, timings)
        except Exception as exc:  # noqa: BLE001
            results[i] = _failure(p.row, exc, arrays)
    return results  # type: ignore[return-value]


def _failure(row: Mapping[str, Any], exc: Exception, arrays: tuple[str, ...]) -> dict[str, Any]:
    if isinstance(exc, TaskFailure):
        return failure_row(row, exc.reason, arrays)
    return failure_row(row, f"internal_error:{type(exc).__name__}: {exc}", arrays)


@dataclass
class _Pending:
    """A row ready to be rendered: its partial output row and everything its arc needs."""

    row: Mapping[str, Any]
    cutout: Any
    out: dict[str, Any]
    good_r: np.ndarray
    size: int
    offset: tuple[float, float]
    lens: SIELens
    source: Any
    fluxes: SourceFluxes
    fwhm: list[float]
    target: float | None
    metric: str


def _prepare(row: Mapping[str, Any], cutout: Any, bank: Any, settings: Any, arrays: tuple[str, ...],
             timings: dict[str, float] | None) -> dict[str, Any] | _Pending:
    """Checks, masks, PSF and source of one row: a finished output row (controls) or a _Pending render."""
    size = int(_get(row, "stamp_size", settings.default_stamp_size))
    out = _blank(row, arrays)
    _check_cutout(cutout, size)
    control = is_control(row)
    out["arc_noise"] = None if control else settings.arc_noise
    good_r, out["bad_pixel_frac"], out["wise_brightmask_frac"] = pixel_masks(cutout, _bad_mask(settings))
    out["clean"] = is_clean(out["bad_pixel_frac"], settings.clean_max_bad_pixel_frac)
    dx, dy = (float(v) for v in cutout.offset_pix)
    out["host_dx_pix"], out["host_dy_pix"] = dx, dy
    try:
        psf: PsfChoice | None = _psf(row, cutout, settings)
    except PsfUnavailable as exc:
        if not control:
            _record_psf(out, cutout, None)
            raise TaskFailure(f"psf_unavailable:{exc}") from None
        psf = None
    _record_psf(out, cutout, psf)
    out["quality_notes"] = quality_notes(cutout, psf)
    if control:
        return _encoded(out, np.asarray(cutout.image, dtype=np.float32).copy(), None, cutout, arrays, timings)
    if is_null_injection(row):   # zero source flux in every band, whatever the magnitudes say
        row = dict(row, src_mag_r=math.inf, src_mag_g=None, src_mag_z=None)
    theta_e = _fnum(row, "theta_e_arcsec")
    if theta_e is None or theta_e < 0:
        raise TaskFailure(f"bad_manifest:theta_e_arcsec={row.get('theta_e_arcsec')!r}")
    target, metric, column = brightness_target(row)
    targeting = target is not None and not is_null_injection(row)   # a null injection keeps zero flux
    if targeting and not (target > 0 and math.isfinite(target)):
        raise TaskFailure(f"bad_manifest:{column}={target!r}")
    if targeting and metric not in SNR_METRICS:
        raise TaskFailure(f"bad_manifest:target_snr_metric={metric!r} (expected one of {list(SNR_METRICS)})")
    with _timed(timings, "render"):
        lens = SIELens(theta_e, _fnum(row, "lens_e1", 0.0), _fnum(row, "lens_e2", 0.0),
                       _fnum(row, "gamma1", 0.0), _fnum(row, "gamma2", 0.0))
        mode = str(_get(row, "source_mode", "sersic")).lower()
        if mode == "cosmos":
            src, fl = _cosmos(row, bank, settings, out, targeting)
            src = src.with_flux(float(fl.flux[R]))
        elif mode == "sersic":
            fl = _source_fluxes(row, _fnum(row, "src_gr"), _fnum(row, "src_rz"), targeting)
            out["src_colour_source"] = "manifest"
            src = _sersic(row, float(fl.flux[R]))
        else:
            raise TaskFailure(f"bad_manifest:source_mode={mode!r}")
    return _Pending(row, cutout, out, good_r, size, (dx, dy), lens, src, fl, [float(f) for f in psf.fwhm],
                    target if targeting else None, metric)


def _render_pending(pending: list[_Pending], settings: Any) -> list[tuple[np.ndarray, float] | Exception]:
    """(arcs, magnification) of each pending row, or the exception its render raised.

    One render_lensed_batch call per stamp size; when a call fails, its rows are rendered one by one so
    that only the rows at fault fail."""
    results: list[tuple[np.ndarray, float] | Exception] = [ValueError("not rendered")] * len(pending)
    by_size: dict[int, list[int]] = {}
    for i, p in enumerate(pending):
        by_size.setdefault(p.size, []).append(i)

    def render(idx: list[int], size: int) -> None:
        ps = [pending[i] for i in idx]
        arcs, mus = render_lensed_batch(
            [p.lens for p in ps], [p.source for p in ps], [[float(f) for f in p.fluxes.flux] for p in ps],
            [p.fwhm for p in ps], psf_beta=settings.psf_beta, size=size, pixscale=settings.pixscale,
            supersample=settings.supersample, offsets_pix=[p.offset for p in ps],
            return_magnification=True)  # mu from the same rays
        for j, i in enumerate(idx):
            results[i] = (arcs[j], float(mus[j]))

    for size, idx in by_size.items():
        try:
            render(idx, size)
        except Exception:  # noqa: BLE001 - retry alone: only the rows at fault fail
            for i in idx:
                try:
                    render([i], size)
                except Exception as exc:  # noqa: BLE001
                    results[i] = exc
    return results


def _encoded(out: dict[str, Any], stamp: np.ndarray, arc32: np.ndarray | None, cutout: Any,
             arrays: tuple[str, ...], timings: dict[str, float] | None) -> dict[str, Any]:
    if not np.isfinite(stamp).all():
        raise TaskFailure("nonfinite_output")
    with _timed(timings, "encode"):
        out["stamp"] = encode(stamp)
        if "arc" in arrays:
            out["arc"] = None if arc32 is None else encode(arc32)
        if "invvar" in arrays:
            out["invvar"] = encode(cutout.invvar)
        if "maskbits" in arrays:
            out["maskbits"] = None if cutout.maskbits is None else encode_mask(cutout.maskbits)
        if "stamp_npz" in arrays:
            out["stamp_npz"] = encode_npz(stamp)
    out["cutout_ok"] = 1
    out["error"] = None
    return out


def _finish(p: _Pending, arc: np.ndarray, mu: float, settings: Any, arrays: tuple[str, ...],
            timings: dict[str, float] | None) -> dict[str, Any]:
    """Metrics, optional arc noise, the injected stamp and the encoded arrays of a rendered row."""
    row, cutout, out, good_r, size, offset = p.row, p.cutout, p.out, p.good_r, p.size, p.offset
    fl, target, metric = p.fluxes, p.target, p.metric
    arc = np.asarray(arc, dtype=np.float64)
    if not np.isfinite(arc).all():
        bands = "".join(b for i, b in enumerate(BANDS) if not np.isfinite(arc[i]).all())
        raise TaskFailure(f"nonfinite_output:arc_{bands}")
    with _timed(timings, "metrics"):
        invvar_r = np.asarray(cutout.invvar[R], dtype=np.float64)
        snr_all = arc_snr_metrics(arc[R], invvar_r, good_r)
        if target is not None:
            snr = snr_all.get(metric)
            if snr is None or not np.isfinite(snr) or snr <= 0:
                raise TaskFailure(f"target_unreachable:{metric}: no arc flux on good r-band pixels")
            k = float(target) / float(snr)
            arc *= k
            fl = fl.scaled(k)
            # (every SNR metric is proportional to the arc's flux: scaled, not measured again)
            snr_all = {key: None if v is None else v * k for key, v in snr_all.items()}
        for key in SNR_METRICS:
            v = snr_all.get(key)
            out[key] = None if v is None else float(v)
        if not np.any(fl.flux):   # null injection (zero source flux): the arc SNRs are exactly 0
            for key in [k for k in out if k.startswith("arc_snr") and out[k] is None]:
                out[key] = 0.0
        out["magnification"] = float(mu)
        for i, b in enumerate(BANDS):
            out[f"total_injected_flux_{b}"] = float(arc[i].sum())
            out[f"src_flux_{b}"] = float(fl.flux[i])
        centre = (size // 2 + offset[0], size // 2 + offset[1])
        hlr = lensed_half_light_radius(arc[R], settings.pixscale, centre) if arc[R].sum() > 0 else None
        out["lensed_hlr_arcsec"] = None if hlr is None or not np.isfinite(hlr) else float(hlr)
        out["src_mag_r_used"] = fl.mag_r if np.isfinite(fl.mag_r) else None
        out["src_gr_used"], out["src_rz_used"] = fl.gr, fl.rz
    if settings.arc_noise == "poisson":
        with _timed(timings, "render"):
            sky = [sky_level_per_pixel(settings.sky_mag_arcsec2[b], settings.pixscale) for b in BANDS]
            arc = poisson_arc(arc, cutout.invvar, sky, sub_rng(int(row["task_seed"]), "arc_noise"))
    arc32 = arc.astype(np.float32)
    return _encoded(out, add_arc(cutout.image, arc32), arc32, cutout, arrays, timings)
