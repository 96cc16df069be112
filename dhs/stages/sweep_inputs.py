"""Which sweep files a run reads, and how they are cut into Spark tasks (shared by stages 3 and 6)."""

from __future__ import annotations

import fnmatch
import glob
import os

from dhs.config import RunConfig
from dhs.io.paths import S3Options, is_s3, read_bytes, s3_client, split_s3
from dhs.survey.layout import sweep_glob


def _s3_glob(pattern: str, s3: S3Options | None) -> list[str]:
    bucket, key = split_s3(pattern)
    prefix = key.split("*")[0].split("?")[0].split("[")[0]
    client = s3_client(s3)
    out: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if fnmatch.fnmatchcase(obj["Key"], key):
                out.append(f"s3://{bucket}/{obj['Key']}")
    return out


def _expand(item: str, s3: S3Options | None) -> list[str]:
    if any(ch in item for ch in "*?["):
        return sorted(_s3_glob(item, s3) if is_s3(item) else glob.glob(item))
    return [item]


def resolve_sweep_paths(cfg: RunConfig) -> list[str]:
    """The sweep files of the run, sorted and de-duplicated.

    ``stage3.sweep_index`` (text file, one path per line, ``#`` comments) wins over ``stage3.sweeps``
    (glob or list of paths/globs); neither → the DR10 glob under ``survey_root``. An empty result is a
    ``FileNotFoundError`` naming the key and the pattern. Listed files that do not exist are kept (they
    are reported as unreadable by the reading tasks).
    """
    st = cfg.stage3
    s3 = cfg.s3.options()
    if st.sweep_index:
        text = read_bytes(st.sweep_index, s3).decode("utf-8")
        items = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
        base = os.path.dirname(st.sweep_index) if not is_s3(st.sweep_index) else None
        items = [p if (is_s3(p) or os.path.isabs(p) or base is None) else os.path.join(base, p) for p in items]
        source = f"stage3.sweep_index ({st.sweep_index})"
    elif st.sweeps:
        items = [st.sweeps] if isinstance(st.sweeps, str) else list(st.sweeps)
        source = f"stage3.sweeps ({st.sweeps})"
    else:
        items = [sweep_glob(cfg.survey_root)]
        source = f"default sweep glob {items[0]} (stage3.sweeps unset)"
    paths: list[str] = []
    for it in items:
        paths.extend(_expand(it, s3))
    paths = sorted(dict.fromkeys(paths))
    if not paths:
        raise FileNotFoundError(f"stage 3: no sweep files found from {source}")
    return paths


def sweep_read_tasks(cfg: RunConfig, paths: list[str]) -> list[tuple[str, int, int]]:
    """(path, start, stop) per task; start = stop = −1 means the whole file."""
    chunk = cfg.stage3.read_chunk_rows
    if not chunk:
        return [(p, -1, -1) for p in paths]
    from dhs.survey.sweeps import sweep_nrows

    out = []
    for p in paths:
        try:
            n = sweep_nrows(p, cfg.s3.options())
        except Exception:  # noqa: BLE001 - the task reports the read error by name
            out.append((p, -1, -1))
            continue
        out += [(p, a, min(a + chunk, n)) for a in range(0, max(n, 1), chunk)]
    return out
