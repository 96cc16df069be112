"""``build_sky``: write a small synthetic sky in the DR10 layout (docs/conventions.md).

Under ``out_dir``::

    sweep/10.1/sweep-<AAA>{p|m}<BBB>-<CCC>{p|m}<DDD>.fits      DR10 sweep columns, HDU1
    coadd/<AAA>/<brick>/legacysurvey-<brick>-{image,invvar,psfsize}-{g,r,z}.fits.fz
    coadd/<AAA>/<brick>/legacysurvey-<brick>-maskbits.fits.fz  HDU1 MASKBITS, HDU2 WISEM1, HDU3 WISEM2
    survey-bricks-dr10-south.fits.gz                           per-brick summary (lower-case columns)
    dhs-synth.json                                             what was built (this module's record)

Coadds are ``coadd_size``² pixels at 0.262″ with the brick-rule TAN WCS (CRVAL = brick centre,
CRPIX = (size+1)/2, CD = diag(−0.262/3600, +0.262/3600)). Every object of the sweep is drawn into the
images from its catalogue row (flux, TYPE, SHAPE_R/E1/E2, SERSIC) convolved with a Moffat(β = 3.5) PSF
whose FWHM corresponds to the catalogue PSFSIZE (same noise-equivalent area, docs/conventions.md); Gaussian
noise with the variance 1/invvar of each pixel is added. Everything is a deterministic function of
(n_bricks, seed, coadd_size): the same arguments give byte-identical files.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass

import numpy as np
from astropy.io import fits

from dhs.sampling.hashing import rng_from_seed, stable_hash64
from dhs.survey.bricks import Brick, brick_header, brick_wcs
from dhs.survey.layout import BRICK_SUMMARY_NAME, coadd_path, sweep_dir, sweep_name
from dhs.survey.photometry import psfdepth_ivar_to_mag5
from dhs.synth.catalog import EXTINCTION_COEFF, sweep_columns
from dhs.synth.maps import PSF_HOLE_RADIUS, BrickMaps, make_maps, punch_psf_hole
from dhs.synth.objects import LRG_EDGE_MARGIN, BrickObjects, make_objects
from dhs.synth.plan import BANDS, MOFFAT_BETA, Conditions, brick_conditions, plan_bricks, psf_nea_pix
from dhs.synth.render import add_stamp, render_object, shape_from_catalogue
from dhs.synth.writers import table_hdu, write_compressed, write_fits_gz, write_sweep

MANIFEST_NAME = "dhs-synth.json"
LRG_KINDS = ("lrg", "lrg_edge")


@dataclass(frozen=True)
class SynthSky:
    """What :func:`build_sky` wrote.

    ``survey_root``: absolute path of the sky; ``bricknames``: bricks in build order;
    ``sweep_paths``: the sweep files; ``brick_summary_path``: survey-bricks-dr10-south.fits.gz;
    ``n_objects``: sweep rows; ``n_lrg_like``: LRG-like hosts (DEV/SER, pass the v2…v5 cuts), including
    ``edge_galaxy_ids`` (deliberately 2–14 px from a coadd edge); ``n_lrg_inner``: those ≥ 40 px from
    every edge; ``psf_hole_galaxy_ids``: LRG-like hosts inside the zero-PSFSIZE hole of a g-band map;
    ``brick_groups``: group number of each brick (bricks of a group are adjacent on the sky);
    ``allmask_bricks``: brick → band of its no-data (ALLMASK) strip.
    Galaxy ids are ``<brickname>_<objid>`` as in the parent table (docs/outputs.md).
    """

    survey_root: str
    bricknames: tuple[str, ...]
    sweep_paths: tuple[str, ...]
    brick_summary_path: str
    n_objects: int
    n_lrg_like: int
    seed: int = 42
    coadd_size: int = 480
    n_lrg_inner: int = 0
    psf_hole_galaxy_ids: tuple[str, ...] = ()
    edge_galaxy_ids: tuple[str, ...] = ()
    brick_groups: tuple[int, ...] = ()
    allmask_bricks: tuple[tuple[str, str], ...] = ()
    manifest_path: str = ""


def _header(brick: Brick, size: int, seed: int, cond: Conditions, band: str | None, bunit: str | None
            ) -> fits.Header:
    h = brick_header(brick, size=size)
    if band is not None:
        h["BAND"] = (band, "filter")
        h["PSFSIZE"] = (cond.psfsize[band], "[arcsec] Gaussian-NEA FWHM of the PSF")
        h["MOFFWHM"] = (round(cond.moffat_fwhm[band], 6), "[arcsec] Moffat FWHM drawn (same NEA)")
        h["MOFBETA"] = (MOFFAT_BETA, "Moffat beta")
    if bunit is not None:
        h["BUNIT"] = bunit
    h["MAGZERO"] = (22.5, "nanomaggy zero point")
    h["SURVEY"] = "DHS-SYNTH"
    h["SYNSEED"] = (seed, "dhs.synth seed")
    return h


def _render_images(objs: BrickObjects, px: np.ndarray, py: np.ndarray, cond: Conditions, size: int
                   ) -> np.ndarray:
    """Noise-free (3, size, size) images (nanomaggies/pixel) of all objects."""
    img = np.zeros((len(BANDS), size, size), dtype=np.float64)
    fwhms = np.array([cond.moffat_fwhm[b] for b in BANDS])
    for k in range(objs.n):
        shape = shape_from_catalogue(str(objs.type[k]), float(objs.shape_r[k]), float(objs.e1[k]),
                                     float(objs.e2[k]), float(objs.sersic[k]))
        fluxes = np.array([float(objs.flux[b][k]) for b in BANDS])
        cx, cy = int(np.rint(px[k])), int(np.rint(py[k]))
        stamp = render_object(shape, fluxes, fwhms, px[k] - cx, py[k] - cy, beta=MOFFAT_BETA)
        add_stamp(img, stamp, cx, cy)
    return img


def _add_noise(img: np.ndarray, maps: BrickMaps, brickname: str, seed: int) -> np.ndarray:
    out = np.empty(img.shape, dtype=np.float32)
    for i, b in enumerate(BANDS):
        iv = maps.invvar[b].astype(np.float64)
        rng = rng_from_seed(stable_hash64("dhs.synth.noise", seed, brickname, b))
        noise = rng.standard_normal(iv.shape)
        good = iv > 0
        sigma = np.zeros_like(iv)
        sigma[good] = 1.0 / np.sqrt(iv[good])
        out[i] = np.where(good, img[i] + noise * sigma, 0.0)
    return out


def _choose_hole_host(objs: BrickObjects, maps: BrickMaps, size: int) -> int | None:
    """Index of the inner LRG-like host nearest the coadd centre with no mask bit within the hole."""
    best, best_d = None, np.inf
    yy, xx = np.ogrid[:size, :size]
    for k in np.flatnonzero(objs.kind == "lrg"):
        disc = (xx - objs.x[k]) ** 2 + (yy - objs.y[k]) ** 2 <= PSF_HOLE_RADIUS**2
        if maps.maskbits[disc].any():
            continue
        d = np.hypot(objs.x[k] - (size - 1) / 2, objs.y[k] - (size - 1) / 2)
        if d < best_d:
            best, best_d = int(k), d
    return best


def _write_brick(root: str, brick: Brick, size: int, seed: int, cond: Conditions, image: np.ndarray,
                 maps: BrickMaps, dither_seed: int) -> None:
    name = brick.brickname
    for i, b in enumerate(BANDS):
        write_compressed(coadd_path(root, name, "image", b),
                         [(image[i], _header(brick, size, seed, cond, b, "nanomaggy"), "image", "IMAGE")],
                         dither_seed=dither_seed)
        write_compressed(coadd_path(root, name, "invvar", b),
                         [(maps.invvar[b], _header(brick, size, seed, cond, b, "1/nanomaggy^2"),
                           "float_lossless", "INVVAR")])
        write_compressed(coadd_path(root, name, "psfsize", b),
                         [(maps.psfsize[b], _header(brick, size, seed, cond, b, "arcsec"),
                           "float_lossless", "PSFSIZE")])
    h = _header(brick, size, seed, cond, None, None)
    write_compressed(coadd_path(root, name, "maskbits"),
                     [(maps.maskbits, h, "int", "MASKBITS"), (maps.wisemask_w1, h, "int", "WISEM1"),
                      (maps.wisemask_w2, h, "int", "WISEM2")])


def _summary_row(brick: Brick, cond: Conditions, maps: BrickMaps, objs: BrickObjects) -> dict:
    row: dict = {"brickname": brick.brickname, "brickid": brick.brickid, "ra": brick.ra, "dec": brick.dec,
                 "ra1": brick.ra1, "ra2": brick.ra2, "dec1": brick.dec1, "dec2": brick.dec2}
    for b in BANDS:
        row[f"nexp_{b}"] = cond.nexp[b]
    row["nobjs"] = objs.n
    for t in ("PSF", "SIMP", "REX", "EXP", "DEV", "SER", "DUP"):
        row[f"n{t.lower()}"] = int(np.count_nonzero(objs.type == t))
    for b in BANDS:
        ps = maps.psfsize[b]
        row[f"psfsize_{b}"] = float(np.median(ps[ps > 0]))
    for b in BANDS:
        iv = maps.invvar[b]
        med = float(np.median(iv[iv > 0]))
        row[f"psfdepth_{b}"] = float(psfdepth_ivar_to_mag5(med / psf_nea_pix(cond.psfsize[b])))
    for b in BANDS:
        iv = maps.invvar[b]
        med = float(np.median(iv[iv > 0]))
        sig = cond.psfsize[b] / 2.3548200450309493
        nea_rex = 4.0 * np.pi * (sig**2 + (0.45 / 1.1774) ** 2) / 0.262**2
        row[f"galdepth_{b}"] = float(psfdepth_ivar_to_mag5(med / nea_rex))
    row["ebv"] = cond.ebv
    for b in BANDS:
        row[f"ext_{b}"] = EXTINCTION_COEFF[b.upper()] * cond.ebv
        row[f"trans_{b}"] = 10.0 ** (-0.4 * row[f"ext_{b}"])
    return row


_SUMMARY_SCHEMA: list[tuple[str, str]] = (
    [("brickname", "8A"), ("brickid", "J"), ("ra", "D"), ("dec", "D"), ("ra1", "D"), ("ra2", "D"),
     ("dec1", "D"), ("dec2", "D")]
    + [(f"nexp_{b}", "I") for b in BANDS]
    + [(c, "J") for c in ("nobjs", "npsf", "nsimp", "nrex", "nexp", "ndev", "nser", "ndup")]
    + [(f"psfsize_{b}", "E") for b in BANDS] + [(f"psfdepth_{b}", "E") for b in BANDS]
    + [(f"galdepth_{b}", "E") for b in BANDS] + [("ebv", "E")]
    + [(f"ext_{b}", "E") for b in BANDS] + [(f"trans_{b}", "E") for b in BANDS]
)
_SUMMARY_UNITS = {"ra": "deg", "dec": "deg", "ra1": "deg", "ra2": "deg", "dec1": "deg", "dec2": "deg",
                  "ebv": "mag", **{f"psfsize_{b}": "arcsec" for b in BANDS},
                  **{f"psfdepth_{b}": "mag" for b in BANDS}, **{f"galdepth_{b}": "mag" for b in BANDS},
                  **{f"ext_{b}": "mag" for b in BANDS}}


def _write_summary(path: str, rows: list[dict], size: int, seed: int) -> None:
    cols = {name: np.array([r[name] for r in rows]) for name, _ in _SUMMARY_SCHEMA}
    hdu = table_hdu(cols, _SUMMARY_SCHEMA, _SUMMARY_UNITS)
    hdu.header["DEPTHUNI"] = ("mag", "psfdepth_*/galdepth_* are 5-sigma AB magnitudes")
    hdu.header["COADDSZ"] = (size, "synthetic coadd side, pixels")
    hdu.header["SYNSEED"] = (seed, "dhs.synth seed")
    write_fits_gz(path, hdu)


def _prepare_target(out_dir: str) -> None:
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise FileExistsError(f"synthetic sky target {out_dir!r} exists and is not a directory")
        entries = os.listdir(out_dir)
        if entries and MANIFEST_NAME not in entries:
            raise FileExistsError(
                f"synthetic sky target {out_dir!r} is a non-empty directory that is not a synthetic sky "
                f"(no {MANIFEST_NAME}); choose an empty or new directory")
        shutil.rmtree(out_dir)


def build_sky(out_dir: str, n_bricks: int = 6, seed: int = 42, coadd_size: int = 480) -> SynthSky:
    """Write a synthetic DR10-layout sky under ``out_dir`` and describe it.

    ``n_bricks``: number of bricks (≥ 1; the default 6 gives ≥ 200 inner LRG-like hosts);
    ``seed``: run seed (objects, conditions, noise); ``coadd_size``: coadd side in pixels (≥ 108).
    The sky is written to a temporary sibling folder and moved into place at the end, so an interrupted
    build never leaves a partial sky at ``out_dir``. An existing synthetic sky there is replaced; any
    other non-empty directory is refused (FileExistsError).
    """
    if str(out_dir).startswith(("s3://", "s3a://")):
        raise ValueError(f"build_sky writes a local directory; got {out_dir!r} (upload it afterwards)")
    if not isinstance(coadd_size, (int, np.integer)) or coadd_size < 108:
        raise ValueError(f"coadd_size must be an integer ≥ 108 pixels, got {coadd_size!r}")
    out_dir = os.path.abspath(str(out_dir))
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = f"{out_dir}._tmp-synth-{os.getpid()}"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    dither_seed = 1 + (stable_hash64("dhs.synth.dither", seed) & 0x7FFFFFFF) % 10000

    plan = plan_bricks(int(n_bricks))
    tiles: dict[str, list[dict[str, np.ndarray]]] = {}
    summary, hole_ids, edge_ids, allmask = [], [], [], []
    n_objects = n_lrg = n_inner = 0
    try:
        for i, (brick, _group) in enumerate(plan):
            name = brick.brickname
            cond = brick_conditions(name, seed)
            objs = make_objects(name, seed, coadd_size)
            wcs = brick_wcs(brick, size=coadd_size)
            ra, dec = wcs.wcs_pix2world(objs.x, objs.y, 0)
            ra = np.mod(ra, 360.0)
            px, py = wcs.wcs_world2pix(ra, dec, 0)
            strip = BANDS[(i // 2) % len(BANDS)] if i % 2 == 1 else None
            maps = make_maps(objs, cond, coadd_size, rng_from_seed(stable_hash64("dhs.synth.maps", seed, name)),
                             strip)
            if strip is not None:
                allmask.append((name, strip))
            if i == 0:
                k = _choose_hole_host(objs, maps, coadd_size)
                if k is not None:
                    punch_psf_hole(maps, objs.x[k], objs.y[k], "g")
                    hole_ids.append(f"{name}_{k}")
            image = _add_noise(_render_images(objs, px, py, cond, coadd_size), maps, name, seed)
            _write_brick(tmp, brick, coadd_size, seed, cond, image, maps, dither_seed)
            cols = sweep_columns(brick, objs, maps, cond, ra, dec, seed, coadd_size)
            tile_of = np.array([sweep_name(r, d) for r, d in zip(ra, dec)])
            for t in np.unique(tile_of):
                sel = tile_of == t
                tiles.setdefault(str(t), []).append({c: v[sel] for c, v in cols.items()})
            summary.append(_summary_row(brick, cond, maps, objs))
            lrg = np.isin(objs.kind, LRG_KINDS)
            n_objects += objs.n
            n_lrg += int(lrg.sum())
            inner = ((objs.kind == "lrg") & (objs.x >= LRG_EDGE_MARGIN) & (objs.y >= LRG_EDGE_MARGIN)
                     & (objs.x <= coadd_size - 1 - LRG_EDGE_MARGIN) & (objs.y <= coadd_size - 1 - LRG_EDGE_MARGIN))
            n_inner += int(inner.sum())
            edge_ids += [f"{name}_{k}" for k in np.flatnonzero(objs.kind == "lrg_edge")]

        sweep_paths = []
        for t in sorted(tiles):
            parts = tiles[t]
            merged = {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}
            path = os.path.join(sweep_dir(tmp), t)
            write_sweep(path, merged)
            sweep_paths.append(os.path.join(sweep_dir(out_dir), t))
        _write_summary(os.path.join(tmp, BRICK_SUMMARY_NAME), summary, coadd_size, seed)

        sky = SynthSky(
            survey_root=out_dir,
            bricknames=tuple(b.brickname for b, _ in plan),
            sweep_paths=tuple(sweep_paths),
            brick_summary_path=os.path.join(out_dir, BRICK_SUMMARY_NAME),
            n_objects=n_objects,
            n_lrg_like=n_lrg,
            seed=int(seed),
            coadd_size=int(coadd_size),
            n_lrg_inner=n_inner,
            psf_hole_galaxy_ids=tuple(hole_ids),
            edge_galaxy_ids=tuple(edge_ids),
            brick_groups=tuple(g for _, g in plan),
            allmask_bricks=tuple(allmask),
            manifest_path=os.path.join(out_dir, MANIFEST_NAME),
        )
        with open(os.path.join(tmp, MANIFEST_NAME), "w") as fh:
            record = asdict(sky)
            record.pop("survey_root")
            record.pop("manifest_path")
            record["sweep_paths"] = [os.path.relpath(p, out_dir) for p in sky.sweep_paths]
            record["brick_summary_path"] = BRICK_SUMMARY_NAME
            json.dump(record, fh, indent=1, sort_keys=True)
        _prepare_target(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sky
