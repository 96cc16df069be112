"""Stage 4d's outputs: the small tables as single Parquet files, the JSON descriptions, the HTML report, written
to a local folder and published in one move (local rename or S3 upload), and the joint count table placed
beside them."""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import uuid
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dhs.completeness.recovery import RecoveryDefinition
from dhs.completeness.surfaces import POP_COL, clean_selection_text
from dhs.config import RunConfig
from dhs.io.paths import is_s3, join, write_bytes
from dhs.stages.common import write_parquet_atomically


def parquet_bytes(df: pd.DataFrame) -> bytes:
    """``df`` as the bytes of one zstd Parquet file (no index)."""
    bio = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False), bio, compression="zstd")
    return bio.getvalue()


def report_meta(cfg: RunConfig, metrics_dir: str, total: pd.DataFrame, outcomes: dict[str, Any],
                dims: dict[str, str], first_definition: str, inj_sum: dict[str, int], target_metric: str
                ) -> dict[str, Any]:
    """The report's run description: what was read, tasks per population, valid injections, resolved share,
    brightness targeting and the clean selection."""
    s = cfg.stage4d
    thr = cfg.stage4a.resolved.theta_e_over_psf_min
    return {
        "variant": cfg.variant, "experiment_id": cfg.experiment_id, "input (4c metrics)": metrics_dir,
        "tasks": outcomes["rows_in"], "injections": population_total(total, 0, "n_attempt"),
        "controls": population_total(total, 1, "n_attempt"),
        "null injections (audit only, in no rate)": outcomes["n_null"],
        "resolution axis": dims["resolution"],
        "valid injections (proxy inputs, all)": population_total(total, 0, f"nv__{first_definition}__all"),
        "score table": s.scores_path or "none (proxy only)",
        f"resolved injections (θE / psf_fwhm_used_r ≥ {thr:g})": (
            f"{inj_sum['n_resolved'] / inj_sum['n_valid']:.1%} ({inj_sum['n_resolved']} of {inj_sum['n_valid']} "
            "valid injections)" if inj_sum["n_valid"] else "no valid injection"),
        "brightness targeting": (f"{inj_sum['n_targeted']} injections targeted on r-band {target_metric}"
                                 if inj_sum["n_targeted"] else "off (source magnitudes from the manifest)"),
        "clean selection": clean_selection_text(s.max_bad_pixel_frac, s.max_wise_brightmask_frac,
                                                cfg.stage4c.clean_max_bad_pixel_frac),
    }


def population_total(total: pd.DataFrame, population: int, column: str) -> int:
    """Sum of ``column`` over the rows of ``population`` in the all-bins count table."""
    return int(total.loc[total[POP_COL] == population, column].sum())


def output_files(tables: dict[str, pd.DataFrame], snr_hist: pd.DataFrame, outcomes: dict[str, Any],
                 audit_rows: list[dict], null_rows: list[dict], targeting: pd.DataFrame, bins: list,
                 dims: dict[str, str], defs: list[RecoveryDefinition]) -> dict[str, bytes]:
    """The small output files by name (Parquet tables and JSON descriptions; ``fpr.parquet`` only when there
    are false-positive rates)."""
    files: dict[str, bytes] = {
        "completeness.parquet": parquet_bytes(tables["completeness"]),
        "region_aggregate.parquet": parquet_bytes(tables["region_aggregate"]),
        "snr_hist.parquet": parquet_bytes(snr_hist),
        "psf_provenance.parquet": parquet_bytes(outcomes["provenance"]),
        "failures.parquet": parquet_bytes(outcomes["failures"]),
        "shortcut_audit.parquet": parquet_bytes(pd.DataFrame(audit_rows)),
        "null_audit.parquet": parquet_bytes(pd.DataFrame(null_rows)),
        "dimensions.json": json.dumps(
            [{"name": b.name, "column": b.column, "description": dims.get(b.name, b.name),
              "width": b.width, "edges": list(b.edges) if b.edges else None, "categorical": b.categorical}
             for b in bins], indent=2).encode(),
        "brightness_targeting.parquet": parquet_bytes(targeting),
        "recovery_definitions.json": json.dumps(
            [{"name": d.name, "kind": d.kind, "required": list(d.required), "params": d.params,
              "description": d.description} for d in defs], indent=2).encode(),
    }
    if len(tables["fpr"]):
        files["fpr.parquet"] = parquet_bytes(tables["fpr"])
    return files


def write_outputs(cfg: RunConfig, out_dir: str, files: dict[str, bytes], report: dict[str, Any] | None) -> None:
    """Write ``files`` and, with ``report`` (the keyword arguments of :func:`dhs.report.html.build_report`),
    ``report/`` into a local folder and publish it as ``out_dir``."""
    with tempfile.TemporaryDirectory(prefix="dhs4d-") as tmp:
        if report is not None:
            from dhs.report.html import build_report

            build_report(os.path.join(tmp, "report"), **report)
        for name, data in files.items():
            with open(os.path.join(tmp, name), "wb") as fh:
                fh.write(data)
        _publish(tmp, out_dir, cfg.s3.options())


def stage_joint_counts(joint: Any, keys: list[str], out_dir: str) -> str:
    """Write the joint count table with Spark next to ``out_dir`` (one sorted Parquet file); returns the
    staging folder for :func:`place_joint_counts`."""
    staged = f"{out_dir.rstrip('/')}._counts-{uuid.uuid4().hex[:12]}"
    write_parquet_atomically(joint.repartition(1).sortWithinPartitions(*keys), staged, partition_by=())
    return staged


def place_joint_counts(staged: str, target: str, opts: Any) -> None:
    """Move the single Parquet file of ``staged`` to ``target`` and remove ``staged``."""
    if is_s3(staged):
        from dhs.io.paths import s3_client, split_s3

        client = s3_client(opts)
        bucket, prefix = split_s3(staged)
        keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
                for o in page.get("Contents", [])]
        part = sorted(k for k in keys if k.rsplit("/", 1)[-1].startswith("part-"))
        tb, tk = split_s3(target)
        if part:
            client.copy_object(Bucket=tb, Key=tk, CopySource={"Bucket": bucket, "Key": part[0]})
        for k in keys:
            client.delete_object(Bucket=bucket, Key=k)
        return
    parts = sorted(n for n in os.listdir(staged) if n.startswith("part-"))
    if parts:
        os.replace(os.path.join(staged, parts[0]), target)
    shutil.rmtree(staged, ignore_errors=True)


def _publish(tmp: str, out_dir: str, opts: Any) -> None:
    """Move the finished local folder into place (rename locally; upload file by file to S3)."""
    if is_s3(out_dir):
        for root, _, names in os.walk(tmp):
            for n in names:
                p = os.path.join(root, n)
                rel = os.path.relpath(p, tmp).replace(os.sep, "/")
                with open(p, "rb") as fh:
                    write_bytes(join(out_dir, rel), fh.read(), opts)
        return
    final = os.path.abspath(out_dir)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    staging = f"{final}._tmp-{uuid.uuid4().hex[:12]}"
    shutil.copytree(tmp, staging)
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(staging, final)
