"""One segmentation model per worker process: a per-process cache and a Dask worker plugin.

The network is never shipped inside the task graph and never loaded per task. Every
process keeps the segmenters it has loaded in a cache keyed by (model sha256, segmenter,
device). :class:`SegmenterPlugin`, registered on the client, fills that cache when a
worker starts (and on workers that join later), so the first task does not pay for the
load; a task on a process without the plugin (e.g. the threaded scheduler) loads on first
use. :func:`model_load_counts` tells how often each process loaded a model, which is how
the tests prove "once per worker".
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import TYPE_CHECKING, Any, Protocol

from distributed import WorkerPlugin

if TYPE_CHECKING:
    from distributed import Worker


class SegmenterFactory(Protocol):
    """What the cache needs to build a segmenter: a stable key and a loader."""

    def cache_key(self) -> str:
        """Identity of the loaded object (same key, same segmenter)."""
        ...

    def load(self) -> Any:
        """Build the segmenter (reads the weights file)."""
        ...


_CACHE: dict[str, Any] = {}
_LOAD_COUNTS: Counter[str] = Counter()
_LOCK = threading.Lock()


def cached_segmenter(factory: SegmenterFactory) -> Any:
    """The segmenter for ``factory`` in this process, loading it on first use only.

    Thread-safe: concurrent tasks of one worker wait for a single load.

    Parameters
    ----------
    factory : SegmenterFactory
        E.g. :class:`antema_scale.pipeline.segmenters.SegmenterSpec`.

    Returns
    -------
    object
        Whatever ``factory.load()`` returned.
    """
    key = factory.cache_key()
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = factory.load()
            _LOAD_COUNTS[key] += 1
        return _CACHE[key]


def model_load_counts() -> dict[str, int]:
    """How many times this process loaded each cached segmenter, by cache key."""
    with _LOCK:
        return dict(_LOAD_COUNTS)


def clear_segmenter_cache() -> None:
    """Forget every cached segmenter and the load counts of this process."""
    with _LOCK:
        _CACHE.clear()
        _LOAD_COUNTS.clear()


class SegmenterPlugin(WorkerPlugin):
    """Loads the run's segmenter into each worker's process cache when the worker starts.

    Parameters
    ----------
    factory : SegmenterFactory
        Picklable description of the segmenter (settings, not weights).
    """

    name = "antema-scale-segmenter"

    def __init__(self, factory: SegmenterFactory) -> None:
        self.factory = factory

    def setup(self, worker: Worker) -> None:
        """Load the segmenter once on ``worker``'s process."""
        cached_segmenter(self.factory)
