"""Per-executor state of the Spark stages: the coadd store and the COSMOS bank of one Python worker.

Spark reuses Python workers between tasks, so module-level objects live as long as the worker: a coadd store
(with its byte-bounded brick cache) and a bank are opened once per worker, not once per batch. The store
cache holds one entry (a new survey root replaces the previous store and its brick cache); banks are kept
per path.
"""

from __future__ import annotations

from typing import Any

__all__ = ["executor_bank", "executor_store"]

_STORES: dict[tuple, Any] = {}
_BANKS: dict[tuple, Any] = {}


def executor_store(root: str, cache_bytes: int, endpoint_url: str | None, region: str | None) -> Any:
    """The :class:`~dhs.survey.coadd.CoaddStore` of this worker for ``root`` (brick cache of ``cache_bytes``)."""
    key = (root, int(cache_bytes), endpoint_url, region)
    store = _STORES.get(key)
    if store is None:
        from dhs.survey.coadd import CoaddStore

        store = CoaddStore(root, cache_bytes=int(cache_bytes), s3_endpoint_url=endpoint_url, s3_region=region)
        _STORES.clear()
        _STORES[key] = store
    return store


def executor_bank(path: str | None, endpoint_url: str | None, region: str | None) -> Any:
    """The :class:`~dhs.cosmos.bank.CosmosBank` of this worker (opened lazily once; None without a bank)."""
    if not path:
        return None
    key = (path, endpoint_url, region)
    bank = _BANKS.get(key)
    if bank is None:
        from dhs.cosmos.bank import CosmosBank

        bank = CosmosBank.open(path, lazy=True, s3_endpoint_url=endpoint_url, s3_region=region)
        _BANKS[key] = bank
    return bank
