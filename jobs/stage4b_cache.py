"""Entry point of stage 4b, the coadd cache: mirror the coadd files of a manifest's bricks.

    spark-submit jobs/stage4b_cache.py --config CONFIG.yaml [--set stage4c.cache.base_url=https://...]
    python jobs/stage4b_cache.py --manifest MANIFEST_DIR --base-url URL --dest DIR_OR_S3 [--workers 8]

With ``--config`` the bricks come from the stage 4a manifest of that run and the settings from
``stage4c.cache``; the second form needs no Spark and no config (the assets table is written to
``--assets``, default ``<dest>/assets.parquet``).
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="dhs stage 4b: mirror DR10 coadd files for a manifest's bricks")
    p.add_argument("--config", help="run configuration YAML (uses stage4c.cache and the 4a manifest)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (repeatable)")
    p.add_argument("--manifest", help="manifest folder (Parquet) when running without --config")
    p.add_argument("--base-url", help="HTTP(S) root holding coadd/<AAA>/<brick>/...")
    p.add_argument("--dest", help="cache root: local directory or s3://bucket/prefix")
    p.add_argument("--assets", help="assets table path (default <dest>/assets.parquet)")
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--retries", type=int, default=4)
    p.add_argument("--backoff", type=float, default=1.0, help="first retry delay in seconds")
    args = p.parse_args(argv)

    if args.config:
        from dhs.config import ConfigError, load_config
        from dhs.spark import get_spark
        from dhs.stages import stage4b

        try:
            cfg = load_config(args.config, args.overrides)
        except ConfigError as exc:
            print(f"dhs: {exc}", file=sys.stderr)
            return 2
        result = stage4b.run(get_spark(cfg.spark), cfg)
        return 0 if not result.failures else 1
    if not (args.manifest and args.base_url and args.dest):
        p.error("give --config, or all of --manifest, --base-url and --dest")
    from dhs.io.paths import join
    from dhs.stages.stage4b import manifest_bricks, mirror_bricks, write_assets

    table = mirror_bricks(manifest_bricks(None, args.manifest), args.base_url, args.dest, workers=args.workers,
                          retries=args.retries, backoff_s=args.backoff)
    out = write_assets(table, args.assets or join(args.dest, "assets.parquet"))
    bad = [r for r in table.to_pylist() if not r["ok"]]
    print(f"[dhs] stage 4b: {table.num_rows} bricks, {table.num_rows - len(bad)} complete -> {out}")
    for r in bad:
        print(f"[dhs]   {r['brick']}: {r['error']}", file=sys.stderr)
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
