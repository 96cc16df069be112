"""HTTP(S) GET with retries and exponential backoff, shared by the coadd cache (stage 4b) and the cutout
service client (stage 6).

A request is retried after connection errors, timeouts, HTTP 429 and 5xx, and whatever else the caller's
``read`` rejects by raising a retryable exception; HTTP 4xx other than 429 (e.g. 404) is final. Attempt k
(k ≥ 1) is preceded by a pause of ``backoff_s · 2^(k−1)`` seconds.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = ["FinalHTTPError", "RetryOutcome", "get_with_retries", "is_final_status"]


class FinalHTTPError(Exception):
    """An HTTP status that retrying will not fix (4xx other than 429); the message is ``http_<code>``."""


def is_final_status(code: int) -> bool:
    """True for HTTP statuses that a retry cannot fix: 4xx other than 429."""
    return 400 <= code < 500 and code != 429


@dataclass(frozen=True)
class RetryOutcome(Generic[T]):
    """Result of :func:`get_with_retries`: ``value`` (None on failure), ``error`` (None on success: the last
    failure's description), ``attempts`` made and ``final`` (stopped by a :class:`FinalHTTPError`)."""

    value: T | None
    error: str | None
    attempts: int
    final: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


def get_with_retries(url: str, read: Callable[[Any], T], *, retries: int, backoff_s: float, timeout_s: float,
                     describe: Callable[[Exception], str], retry_on: tuple[type[Exception], ...] = (Exception,),
                     headers: dict[str, str] | None = None,
                     sleep: Callable[[float], None] = time.sleep) -> RetryOutcome[T]:
    """GET ``url`` up to ``retries + 1`` times; ``read(response)`` turns an open response into the value.

    ``describe`` turns a retryable exception (one of ``retry_on``) into the error text kept for the report;
    a :class:`FinalHTTPError` (raised for final HTTP statuses, or by ``read``) ends the attempts at once.
    Exceptions outside ``retry_on`` propagate.
    """
    request = urllib.request.Request(url, headers=headers or {})
    last = "unknown"
    for attempt in range(retries + 1):
        if attempt:
            sleep(backoff_s * (2 ** (attempt - 1)))
        try:
            try:
                response = urllib.request.urlopen(request, timeout=timeout_s)
            except urllib.error.HTTPError as exc:
                if is_final_status(exc.code):
                    raise FinalHTTPError(f"http_{exc.code}") from None
                raise
            with response:
                return RetryOutcome(read(response), None, attempt + 1)
        except FinalHTTPError as exc:
            return RetryOutcome(None, str(exc), attempt + 1, final=True)
        except retry_on as exc:
            last = describe(exc)
    return RetryOutcome(None, last, retries + 1)
