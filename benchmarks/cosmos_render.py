"""COSMOS (interpolated real-galaxy template) rendering: dhs against lenstronomy INTERPOL in one process.

Run on its own: .venv/bin/python benchmarks/cosmos_render.py [--catalog FITS] [--stamps N] [--accuracy]
(``benchmarks/bench_render.py`` prints the same ratio next to the Sersic one).

Templates: a bank built from ``--catalog`` (a GalSim RealGalaxyCatalog FITS file, e.g.
../shared/data/cosmos/real_galaxy_catalog_26_extension_example.fits) with ``dhs.cosmos.builder``, or a
synthetic bank (exponential discs with clumps, ``dhs.cosmos.synthetic``) when none is given.

Stamps: 3-band 64x64, 0.262"/pixel; per stamp a new template draw, template scale U(0.5, 2.5), random
angle and mirror, SIE theta_E U(0.3, 2.5)" with |e| <= 0.3 and external shear <= 0.08, the source within
0.6 theta_E of the lens centre, Moffat FWHM per band and beta per stamp from a pool of 0.8-1.6" x 2.5-4.5
(so that lenstronomy reuses one ImageModel per PSF).

lenstronomy reference: SIE + SHEAR lens, INTERPOL source (the template as surface brightness, bilinear),
supersampling_factor=4 with supersampling_convolution=True, a supersampled PIXEL Moffat kernel holding
>= 99.5 % of the flux, ImageModel objects reused.  dhs: ``render_lensed_bands(...,
return_magnification=True)`` with a new ``InterpolatedSource`` per stamp, as stage 4c calls it.

Times are CPU (time.process_time); medians per stamp over interleaved rounds.  With ``--accuracy`` both are
also compared with a brute force: the unfiltered bilinear template point-sampled 16x finer than the pixels
(rays from lenstronomy) and convolved with GalSim's untruncated Moffat (tests/core/_reference.py does the
same for the tests); errors are max |image - truth| / max(truth) and |sum - sum(truth)| / sum(truth).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PIX = 0.262
SIZE = 64
FWHM_POOL = tuple(np.round(np.linspace(0.8, 1.6, 5), 3))
BETA_POOL = (2.5, 3.5, 4.5)
#: speed-up over lenstronomy INTERPOL that issue #20 asks for
TARGET_RATIO = 5.0


@dataclass(frozen=True)
class Stamp:
    """One benchmark stamp: lens, template draw and PSFs."""

    lens: object
    template: np.ndarray
    pixscale: float
    scale: float
    angle: float
    x: float
    y: float
    fwhm: tuple[float, float, float]
    beta: float
    offset: tuple[float, float]
    fluxes: tuple[float, float, float]


def load_templates(catalog: str | None, n: int = 40) -> tuple[list[np.ndarray], float, str]:
    """(templates, pixscale, description): a bank built from a GalSim catalogue, or a synthetic one."""
    from dhs.cosmos.bank import CosmosBank

    tmp = Path(tempfile.mkdtemp(prefix="dhs-bench-cosmos-"))
    if catalog:
        from dhs.cosmos.builder import build_bank

        build_bank(catalog, tmp / "bank.h5", n=n, seed=1, created_utc="2000-01-01T00:00:00Z")
        what = f"bank built from {catalog}"
    else:
        from dhs.cosmos.synthetic import write_synthetic_bank

        write_synthetic_bank(tmp / "bank.h5", n=n, seed=1)
        what = "synthetic bank (exponential discs + clumps)"
    with CosmosBank.open(tmp / "bank.h5", lazy=False) as bank:
        return [bank.template(i) for i in range(bank.n)], bank.pixscale, f"{what}: {bank.n} templates"


def draw_stamps(templates: list[np.ndarray], pixscale: float, n: int, seed: int = 1) -> list[Stamp]:
    """``n`` random stamps (see the module docstring for the ranges)."""
    from lens_draws import draw_lens_and_source_position

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        lens, _, x, y = draw_lens_and_source_position(rng, (0.3, 2.5), 0.3)
        tpl = templates[int(rng.integers(len(templates)))]
        if rng.uniform() < 0.5:
            tpl = np.ascontiguousarray(tpl[:, ::-1])
        f_r = 10.0 ** (-0.4 * (rng.uniform(20.0, 23.0) - 22.5))
        out.append(Stamp(lens, tpl, pixscale, float(rng.uniform(0.5, 2.5)), float(rng.uniform(0, 2 * math.pi)),
                         x, y,
                         tuple(float(rng.choice(FWHM_POOL)) for _ in range(3)), float(rng.choice(BETA_POOL)),
                         tuple(rng.uniform(-0.5, 0.5, 2)), (0.7 * f_r, f_r, 1.4 * f_r)))
    return out


def dhs_stamp(st: Stamp):
    """The stage 4c call: a new source object, three bands, magnification from the same rays."""
    from dhs.core import InterpolatedSource, render_lensed_bands

    src = InterpolatedSource(st.template, st.pixscale, st.fluxes[1], x=st.x, y=st.y, angle=st.angle,
                             scale=st.scale)
    return render_lensed_bands(st.lens, src, st.fluxes, st.fwhm, psf_beta=st.beta, size=SIZE, pixscale=PIX,
                               offset_pix=st.offset, return_magnification=True)


class Lenstronomy:
    """lenstronomy INTERPOL renderer with one reused ImageModel per (FWHM, beta) of the pool."""

    def __init__(self) -> None:
        from lenstronomy.Data.imaging_data import ImageData
        from lenstronomy.Data.psf import PSF
        from lenstronomy.ImSim.image_model import ImageModel
        from lenstronomy.LensModel.lens_model import LensModel
        from lenstronomy.LightModel.light_model import LightModel
        from lenstronomy.Util import simulation_util

        from dhs.core import moffat_kernel
        from dhs.core.psf import KERNEL_FLUX_FRACTION, moffat_kernel_size

        kwargs_data = simulation_util.data_configure_simple(num_pix=SIZE, delta_pix=PIX, exposure_time=1.0,
                                                            background_rms=1.0)
        self.models = {}
        for fwhm in FWHM_POOL:
            for beta in BETA_POOL:
                ks = moffat_kernel_size(fwhm, beta, PIX / 4, KERNEL_FLUX_FRACTION)
                kernel = moffat_kernel(fwhm, beta, pixscale=PIX / 4, size=ks)
                psf = PSF(psf_type="PIXEL", kernel_point_source=kernel, point_source_supersampling_factor=4)
                self.models[(float(fwhm), float(beta))] = ImageModel(
                    ImageData(**kwargs_data), psf, lens_model_class=LensModel(["SIE", "SHEAR"]),
                    source_model_class=LightModel(["INTERPOL"]),
                    kwargs_numerics={"supersampling_factor": 4, "supersampling_convolution": True})

    @staticmethod
    def kwargs(st: Stamp, flux: float, lens_frame: bool = False):
        """(lens kwargs, INTERPOL kwargs) of a stamp.  lenstronomy's frame has its origin at the stamp's
        centre, (SIZE - 1) / 2 pixels, dhs puts the lens at pixel SIZE // 2 + offset; ``lens_frame``: the
        origin at the lens centre instead."""
        cx, cy = (0.0, 0.0) if lens_frame else ((st.offset[0] + 0.5) * PIX, (st.offset[1] + 0.5) * PIX)
        lens = st.lens
        kl = [{"theta_E": lens.theta_e, "e1": lens.e1, "e2": lens.e2, "center_x": cx, "center_y": cy},
              {"gamma1": lens.gamma1, "gamma2": lens.gamma2, "ra_0": cx, "dec_0": cy}]
        pix = st.pixscale * st.scale
        ks = [{"image": st.template / (st.template.sum() * pix**2), "amp": flux, "center_x": cx + st.x,
               "center_y": cy + st.y, "phi_G": st.angle, "scale": pix}]
        return kl, ks

    def stamp(self, st: Stamp) -> np.ndarray:
        """Three bands of a new source: INTERPOL caches its interpolator per model, so it is reset."""
        out = []
        for fwhm, flux in zip(st.fwhm, st.fluxes, strict=True):
            kl, ks = self.kwargs(st, flux)
            model = self.models[(fwhm, st.beta)]
            model.SourceModel.delete_interpol_caches()
            out.append(model.image(kwargs_lens=kl, kwargs_source=ks))
        return np.array(out)


def brute_force(st: Stamp, band: int = 1, factor: int = 16) -> np.ndarray:
    """Converged reference of one band: the bilinear template point-sampled ``factor`` x finer than the
    pixels (lenstronomy rays and INTERPOL), convolved with GalSim's untruncated Moffat, binned to pixels."""
    import galsim
    import scipy.fft as sfft
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LightModel.light_model import LightModel

    kl, ks = Lenstronomy.kwargs(st, st.fluxes[band], lens_frame=True)
    m = SIZE * factor
    h = PIX / factor
    frac = (np.arange(m) + 0.5) / factor - 0.5  # sub-pixel centres in pixels
    xx, yy = np.meshgrid((frac - SIZE // 2 - st.offset[0]) * PIX, (frac - SIZE // 2 - st.offset[1]) * PIX)
    bx, by = LensModel(["SIE", "SHEAR"]).ray_shooting(xx.ravel(), yy.ravel(), kl)
    sb = LightModel(["INTERPOL"]).surface_brightness(bx, by, ks).reshape(m, m) * h * h
    psf = galsim.Moffat(beta=st.beta, fwhm=st.fwhm[band])
    wrap = psf.half_light_radius * 30
    n = sfft.next_fast_len(m + math.ceil(wrap / h))
    n += n % 2
    kimg = psf.drawKImage(nx=n, ny=n, scale=2.0 * math.pi / (n * h))
    otf = np.fft.ifftshift(kimg.array.real)[:, : n // 2 + 1]
    conv = sfft.irfft2(sfft.rfft2(sb, s=(n, n)) * otf, s=(n, n))[:m, :m]
    return conv.reshape(SIZE, factor, SIZE, factor).sum(axis=(1, 3))


def median_cpu_ms(fns: dict, stamps: list[Stamp], repeats: int = 3) -> dict[str, float]:
    """Median over stamps of the median over interleaved rounds of the CPU ms per call."""
    cpu = {name: [[] for _ in stamps] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            for i, st in enumerate(stamps):
                c0 = time.process_time()
                fn(st)
                cpu[name][i].append((time.process_time() - c0) * 1e3)
    return {name: statistics.median(statistics.median(v) for v in cpu[name]) for name in fns}


def accuracy(stamps: list[Stamp], ref: Lenstronomy) -> dict[str, tuple[float, float]]:
    """Worst (peak error, flux error) of dhs and lenstronomy against the brute force, r band."""
    worst = {"dhs": [0.0, 0.0], "lenstronomy": [0.0, 0.0]}
    for st in stamps:
        truth = brute_force(st)
        for name, img in (("dhs", dhs_stamp(st)[0][1]), ("lenstronomy", ref.stamp(st)[1])):
            peak = float(np.abs(img - truth).max() / truth.max())
            flux = float(abs(img.sum() / truth.sum() - 1.0))
            worst[name] = [max(worst[name][0], peak), max(worst[name][1], flux)]
    return {k: (v[0], v[1]) for k, v in worst.items()}


def run(catalog: str | None, n_stamps: int, check_accuracy: bool = False, out=print) -> float:
    """Print the COSMOS comparison; returns the ratio lenstronomy / dhs (median CPU ms per stamp)."""
    templates, pixscale, what = load_templates(catalog)
    stamps = draw_stamps(templates, pixscale, n_stamps)
    ref = Lenstronomy()
    for st in stamps[:2]:  # warm up caches (PSF tables, FFT plans) for both
        dhs_stamp(st)
        ref.stamp(st)
    t = median_cpu_ms({"lenstronomy": ref.stamp, "dhs": dhs_stamp}, stamps)
    ratio = t["lenstronomy"] / t["dhs"]
    out(f"COSMOS templates ({what}), {len(stamps)} 3-band {SIZE}x{SIZE} stamps, scale 0.5-2.5, "
        f"theta_E 0.3-2.5\", FWHM {FWHM_POOL[0]}-{FWHM_POOL[-1]}\", beta {BETA_POOL[0]}-{BETA_POOL[-1]}")
    out(f"COSMOS median CPU ms per 3-band stamp: lenstronomy INTERPOL (supersampling 4, supersampled "
        f"convolution) {t['lenstronomy']:.2f} | dhs render_lensed_bands + magnification {t['dhs']:.2f} | "
        f"ratio {ratio:.1f}x (issue #20 target {TARGET_RATIO:.0f}x)")
    if check_accuracy:
        acc = accuracy(stamps, ref)
        for name, (peak, flux) in acc.items():
            out(f"COSMOS accuracy vs 16x point-sampled brute force (r band, worst of {len(stamps)}): {name} "
                f"peak {100 * peak:.2f} %, flux {100 * flux:.3f} %")
    return ratio


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--catalog", default=None, help="GalSim RealGalaxyCatalog FITS (default: synthetic bank)")
    ap.add_argument("--stamps", type=int, default=30, help="number of random 3-band stamps")
    ap.add_argument("--accuracy", action="store_true", help="also compare both with a brute force")
    args = ap.parse_args(argv)
    run(args.catalog, args.stamps, args.accuracy)
    return 0


if __name__ == "__main__":
    sys.exit(main())
