"""Stage metadata: ``_stage_config.json`` (resolved config, version, commit, inputs, counts, times).

A stage's output folder counts as complete only when its ``_stage_config.json`` exists: the file is written
last, so a crash never leaves a folder that looks complete.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
from typing import Any

from dhs.io.paths import S3Options, exists, join, read_bytes, write_bytes

STAGE_CONFIG_NAME = "_stage_config.json"


def dhs_version() -> str:
    """The installed dhs version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dhs")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "unknown"


def git_commit() -> str | None:
    """The git commit of the dhs source tree if known ($DHS_GIT_COMMIT, else ``git rev-parse``)."""
    env = os.environ.get("DHS_GIT_COMMIT")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(
            ["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _iso(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, tz=_dt.UTC).isoformat()


def stage_config_document(
    resolved_config: dict[str, Any],
    stage: str,
    *,
    inputs: list[str],
    counts: dict[str, Any],
    started: float,
    ended: float,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The content of ``_stage_config.json`` as a dict."""
    return {
        "stage": stage,
        "dhs_version": dhs_version(),
        "git_commit": git_commit(),
        "config": resolved_config,
        "inputs": list(inputs),
        "counts": counts,
        "started_utc": _iso(started),
        "ended_utc": _iso(ended),
        "seconds": round(ended - started, 3),
        **(extra or {}),
    }


def write_stage_config_file(out_dir: str, document: dict[str, Any], s3: S3Options | None = None) -> str:
    """Write ``document`` as ``<out_dir>/_stage_config.json``; returns its path."""
    path = join(out_dir, STAGE_CONFIG_NAME)
    write_bytes(path, json.dumps(document, indent=2, sort_keys=True, default=str).encode("utf-8"), s3)
    return path


def read_stage_config(out_dir: str, s3: S3Options | None = None) -> dict[str, Any]:
    """Read ``<out_dir>/_stage_config.json``."""
    return json.loads(read_bytes(join(out_dir, STAGE_CONFIG_NAME), s3).decode("utf-8"))


def output_complete(out_dir: str, s3: S3Options | None = None) -> bool:
    """True when the folder holds a ``_stage_config.json`` (written last by every stage)."""
    return exists(join(out_dir, STAGE_CONFIG_NAME), s3)
