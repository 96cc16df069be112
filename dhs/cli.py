"""The ``dhs`` command: ``synth``, ``run``, ``demo``, ``grids`` and ``cosmos-bank`` (DESIGN §4)."""

from __future__ import annotations

import argparse
import importlib
import importlib.resources
import os
import sys
import time
from typing import Any

import yaml

from dhs.config import ConfigError, RunConfig, config_from_dict, load_config

STAGE_CHOICES = ("3", "4a", "4c", "4d", "6", "all")
DEMO_CONFIG = "presets/debug.yaml"
"""The demo's run configuration, package data of ``dhs`` (the repository's configs/debug.yaml)."""


def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="write a synthetic DR10-layout sky", description="Write a small synthetic "
                       "sky in the DR10 layout (sweeps, coadds, maskbits, psfsize maps, brick table).")
    p.add_argument("--out", required=True, help="output directory (the survey root)")
    p.add_argument("--bricks", type=int, default=6, help="number of bricks (default 6)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument("--coadd-size", type=int, default=480, help="coadd side in pixels (default 480)")
    p.set_defaults(func=cmd_synth)


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run pipeline stages in local Spark", description="Validate CONFIG, then run "
                       "the chosen stage(s) in a Spark session (local[*] unless the config says otherwise).")
    p.add_argument("config", help="run configuration YAML")
    p.add_argument("--stage", choices=STAGE_CHOICES, default="all", help="stage to run (default: all = 3,4a,4c,4d)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set stage4c.supersample=4 (repeatable)")
    p.set_defaults(func=cmd_run)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="synthetic sky + every stage + report", description="Build the synthetic "
                       "sky, run every stage in local Spark and write the report; prints where it is.")
    p.add_argument("--out", default="build/demo", help="output directory (default build/demo)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (repeatable)")
    p.set_defaults(func=cmd_demo)


def _add_grids(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("grids", help="list the named injection grids", description="List the named grids "
                       "(stage4a.grid) with their number of configurations and axis values. Searched in order: "
                       "--grids-dir, $DHS_GRIDS_DIR, the grids shipped in the dhs package.")
    p.add_argument("--grids-dir", default=None, help="extra folder searched first (as stage4a.grids_dir)")
    p.set_defaults(func=cmd_grids)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``dhs`` command."""
    parser = argparse.ArgumentParser(prog="dhs", description="Dark Halo Scope: lens-injection training and "
                                     "calibration data for DESI Legacy Surveys DR10.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_synth(sub)
    _add_run(sub)
    _add_demo(sub)
    _add_grids(sub)
    try:
        from dhs.cosmos.cli import add_parser as add_cosmos
    except ImportError:  # the COSMOS bank builder is optional until installed
        add_cosmos = None
    if add_cosmos is not None:
        add_cosmos(sub)
    return parser


def cmd_synth(args: argparse.Namespace) -> int:
    from dhs.synth import build_sky

    t0 = time.time()
    sky = build_sky(args.out, n_bricks=args.bricks, seed=args.seed, coadd_size=args.coadd_size)
    print(f"[dhs] synthetic sky: {len(sky.bricknames)} bricks, {sky.n_objects} objects, "
          f"{sky.n_lrg_like} LRG-like, {time.time() - t0:.1f} s -> {sky.survey_root}")
    return 0


def _axis_text(values: tuple[float, ...]) -> str:
    return f"{len(values)}: " + (f"{values[0]:g}" if len(values) == 1 else f"{min(values):g}..{max(values):g}")


def cmd_grids(args: argparse.Namespace) -> int:
    from dhs.sampling.grids import AXES, GridError, available_grids

    grids = available_grids(args.grids_dir)
    rows = [["grid", "configs", *AXES, "file"]]
    errors = []
    for g in grids:
        if isinstance(g, GridError):
            errors.append(str(g))
            continue
        rows.append([g.name, str(g.size), *(_axis_text(g.axes[a]) for a in AXES), g.source])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        cells = [c.rjust(w) if i == 1 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        print("  ".join([*cells, r[-1]]).rstrip())
    print("axis columns: number of values: min..max (theta_e, reff in arcsec; dmag in mag)")
    for e in errors:
        print(f"dhs grids: {e}", file=sys.stderr)
    return 1 if errors else 0


def ensure_survey(cfg: RunConfig) -> None:
    """Build the synthetic sky at ``survey_root`` when the config asks for one and it is absent."""
    if cfg.synth is None or os.path.isdir(os.path.join(cfg.survey_root, "coadd")):
        return
    from dhs.synth import build_sky

    sky = build_sky(cfg.survey_root, n_bricks=cfg.synth.n_bricks, seed=cfg.synth.seed,
                    coadd_size=cfg.synth.coadd_size)
    print(f"[dhs] built synthetic sky: {len(sky.bricknames)} bricks, {sky.n_lrg_like} LRG-like -> {sky.survey_root}")


def stage_list(stage: str) -> list[str]:
    from dhs.stages import PIPELINE_ORDER

    return list(PIPELINE_ORDER) if stage == "all" else [stage]


def run_stages(cfg: RunConfig, stages: list[str]) -> list[Any]:
    """Run the given stages in order in one Spark session; returns their StageResults."""
    from dhs.logs import ProgressMonitor, configure_logging
    from dhs.spark import get_spark
    from dhs.stages import STAGES
    from dhs.stages.upstream import check_upstream

    configure_logging(cfg.logging.level)
    check_upstream(cfg, stages)
    ensure_survey(cfg)
    spark = get_spark(cfg.spark, log_level=cfg.logging.spark_level)
    results = []
    with ProgressMonitor(spark, cfg.logging.progress_seconds):
        for st in stages:
            try:
                module = importlib.import_module(STAGES[st])
            except ModuleNotFoundError as exc:
                raise SystemExit(f"dhs: stage {st} is not available in this build ({exc})") from None
            results.append(module.run(spark, cfg))
    return results


def cmd_run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    run_stages(cfg, stage_list(args.stage))
    return 0


def demo_config(out: str, overrides: list[str]) -> RunConfig:
    """The demo run: the debug tier shipped in the package (configs/debug.yaml) with paths under ``out``."""
    debug = importlib.resources.files("dhs").joinpath(DEMO_CONFIG)
    base: dict[str, Any] = yaml.safe_load(debug.read_text()) or {}
    base.update(survey_root=os.path.join(out, "sky"), output_root=os.path.join(out, "output"))
    base.setdefault("synth", {})
    base.setdefault("experiment_id", "demo")
    return config_from_dict(base, overrides, source=f"demo ({debug})")


def cmd_demo(args: argparse.Namespace) -> int:
    cfg = demo_config(os.path.abspath(args.out), args.overrides)
    results = run_stages(cfg, stage_list("all"))
    report = None
    for r in results:
        report = r.extra.get("report") or report
    print(f"[dhs] demo finished. synthetic sky: {cfg.survey_root}")
    print(f"[dhs] outputs: {cfg.output_root}")
    if report:
        print(f"[dhs] report: {report}")
    return 0


def run_stage_job(stage: str, argv: list[str] | None = None) -> int:
    """Entry of ``jobs/<stage>.py`` under spark-submit: ``--config CONFIG.yaml [--set k=v ...]``.

    The session's master comes from spark-submit; the config's ``spark.master`` is used only when absent.
    """
    p = argparse.ArgumentParser(description=f"dhs stage {stage} (spark-submit entry point)")
    p.add_argument("--config", required=True, help="run configuration YAML")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (repeatable)")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        run_stages(cfg, [stage])
    except ConfigError as exc:
        print(f"dhs: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dhs`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"dhs: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
