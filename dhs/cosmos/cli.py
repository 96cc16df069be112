"""``dhs cosmos-bank build``: command-line front end of :func:`dhs.cosmos.builder.build_bank`.

``add_parser(subparsers)`` registers the ``cosmos-bank`` command (with its ``build`` subcommand) on the
``dhs`` parser; each parsed namespace carries ``func`` returning the exit code. ``main(argv)`` runs it
standalone (``python -m dhs.cosmos.cli build ...``).
"""

from __future__ import annotations

import argparse
import sys


def _positive_int(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return v


def _positive_float(text: str) -> float:
    v = float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return v


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``cosmos-bank build`` on ``subparsers``; returns the ``cosmos-bank`` parser."""
    p = subparsers.add_parser("cosmos-bank", help="build the COSMOS real-galaxy source bank",
                              description="COSMOS real-galaxy source bank (HDF5) for source_mode: cosmos.")
    sub = p.add_subparsers(dest="cosmos_command", required=True)
    b = sub.add_parser("build", help="build a bank from a GalSim RealGalaxyCatalog",
                       description="Draw real COSMOS galaxies with GalSim at the bank pixel scale, clean, "
                       "centre and normalise them to unit flux, apply the cuts and write an HDF5 bank. "
                       "Resumable: rerun the same command after an interruption.")
    b.add_argument("--catalog", required=True,
                   help="RealGalaxyCatalog FITS file, or the COSMOS folder holding real_galaxy_catalog_*.fits")
    b.add_argument("--out", required=True, help="output bank file (.h5)")
    b.add_argument("--n", type=_positive_int, default=None, help="number of templates to keep (default: all)")
    b.add_argument("--seed", type=int, default=0, help="seed of the visiting order (default 0)")
    b.add_argument("--stamp-size", type=_positive_int, default=96, help="template side, pixels (default 96)")
    b.add_argument("--pixscale", type=_positive_float, default=0.03,
                   help="template pixel scale, arcsec/pixel (default 0.03)")
    b.add_argument("--hlr-min", type=float, default=0.1, help="minimum half-light radius, arcsec (default 0.1)")
    b.add_argument("--hlr-max", type=float, default=1.0, help="maximum half-light radius, arcsec (default 1.0)")
    b.add_argument("--target-psf-fwhm", type=_positive_float, default=0.12,
                   help="FWHM of the Gaussian replacing the HST PSF, arcsec (default 0.12)")
    b.add_argument("--noise", choices=("mask", "none"), default="mask",
                   help="noise treatment: footprint mask + adaptive smoothing (default) or none")
    b.add_argument("--min-snr", type=float, default=10.0, help="minimum template S/N in HST (default 10)")
    b.add_argument("--max-edge-flux-frac", type=float, default=0.02,
                   help="maximum flux fraction near the stamp border (default 0.02)")
    b.add_argument("--min-stamp-flux-frac", type=float, default=0.97,
                   help="minimum fraction of the HST stamp's flux inside the bank stamp (default 0.97)")
    b.add_argument("--mag-min", type=float, default=None, help="brightest F814W magnitude kept")
    b.add_argument("--mag-max", type=float, default=None, help="faintest F814W magnitude kept")
    b.add_argument("--checkpoint-every", type=_positive_int, default=500,
                   help="galaxies visited between checkpoints (default 500)")
    b.add_argument("--restart", action="store_true", help="discard existing checkpoints and start over")
    b.set_defaults(func=cmd_build)
    return p


def cmd_build(args: argparse.Namespace) -> int:
    """Run the build described by ``args``; prints progress and a one-line summary; returns 0 or 2."""
    from dhs.cosmos.builder import CatalogError, build_bank

    def progress(visited: int, kept: int, total: int) -> None:
        print(f"[dhs cosmos-bank] visited {visited}/{total}, kept {kept}", flush=True)

    try:
        res = build_bank(
            args.catalog, args.out, n=args.n, seed=args.seed, stamp_size=args.stamp_size,
            pixscale=args.pixscale, hlr_min=args.hlr_min, hlr_max=args.hlr_max,
            target_psf_fwhm=args.target_psf_fwhm, noise=args.noise, max_edge_flux_frac=args.max_edge_flux_frac,
            min_snr=args.min_snr, mag_min=args.mag_min, mag_max=args.mag_max,
            checkpoint_every=args.checkpoint_every, restart=args.restart, progress=progress,
            min_stamp_flux_frac=args.min_stamp_flux_frac,
        )
    except (CatalogError, ValueError, RuntimeError) as exc:
        print(f"dhs cosmos-bank: {exc}", file=sys.stderr)
        return 2
    rej = ", ".join(f"{k}={v}" for k, v in sorted(res.rejects.items())) or "none"
    print(f"[dhs cosmos-bank] kept {res.n_kept} of {res.n_visited} visited ({res.n_catalog} in catalogue); "
          f"rejected: {rej}; {res.seconds:.1f} s -> {res.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point: ``python -m dhs.cosmos.cli build --catalog ... --out ...``."""
    parser = argparse.ArgumentParser(prog="dhs")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "cosmos-bank":
        argv = ["cosmos-bank", *argv]
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
