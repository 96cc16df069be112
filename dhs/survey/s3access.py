"""Whole-file access to local paths and ``s3://`` objects for the survey readers.

FITS readers (tile-compressed images in particular) need random access, so an S3 object is downloaded
whole into a per-process temporary folder, read, and deleted again by the caller once its pixels are in
memory. boto3 uses the standard credential chain; the endpoint URL and region are configurable (for
MinIO/moto/other S3-protocol servers).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dhs.io.paths import S3Options, is_s3, s3_client, split_s3


class RemoteFileMissing(FileNotFoundError):
    """The requested local file or S3 object does not exist."""


_TMP_LOCK = threading.Lock()
_TMP_DIR: dict[int, str] = {}


def process_cache_dir() -> str:
    """This process's temporary download folder (created on first use, removed at exit)."""
    pid = os.getpid()
    with _TMP_LOCK:
        d = _TMP_DIR.get(pid)
        if d is None or not os.path.isdir(d):
            d = tempfile.mkdtemp(prefix=f"dhs-s3cache-{pid}-")
            _TMP_DIR[pid] = d
            atexit.register(shutil.rmtree, d, True)
        return d


class FileAccess:
    """Open local files or fetch S3 objects to local temporary copies.

    ``options``: S3 endpoint/region (None → boto3 defaults). The boto3 client is created lazily and is
    not shared across processes.
    """

    def __init__(self, options: S3Options | None = None) -> None:
        self.options = options or S3Options()
        self._client: Any = None
        self._client_pid: int | None = None

    @property
    def client(self) -> Any:
        """The boto3 S3 client for this process."""
        if self._client is None or self._client_pid != os.getpid():
            self._client = s3_client(self.options)
            self._client_pid = os.getpid()
        return self._client

    def _download(self, url: str) -> str:
        from botocore.exceptions import ClientError

        bucket, key = split_s3(url)
        dest = os.path.join(process_cache_dir(), f"{uuid.uuid4().hex}-{os.path.basename(key)}")
        tmp = dest + ".part"
        try:
            self.client.download_file(bucket, key, tmp)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if os.path.exists(tmp):
                os.remove(tmp)
            if code in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
                raise RemoteFileMissing(f"{url}: no such S3 object") from None
            raise
        os.replace(tmp, dest)
        return dest

    @contextmanager
    def local_copy(self, path: str) -> Iterator[str]:
        """Yield a local path for ``path``: the file itself, or a temporary download of an S3 object
        (deleted on exit). Raises :class:`RemoteFileMissing` if it does not exist."""
        if not is_s3(path):
            if not os.path.isfile(path):
                raise RemoteFileMissing(f"{path}: no such file")
            yield path
            return
        local = self._download(path)
        try:
            yield local
        finally:
            try:
                os.remove(local)
            except FileNotFoundError:
                pass
