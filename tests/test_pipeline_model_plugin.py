"""One segmenter per worker process: the cache and the worker plugin."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from distributed import Client, LocalCluster

from antema_scale.pipeline.model_plugin import (
    SegmenterPlugin,
    cached_segmenter,
    clear_segmenter_cache,
    model_load_counts,
)


@dataclass(frozen=True)
class CountingFactory:
    """A stand-in for SegmenterSpec: loading returns the loading process id."""

    key: str

    def cache_key(self) -> str:
        return self.key

    def load(self) -> int:
        return os.getpid()


def _use_model(factory: CountingFactory, _: int) -> int:
    return cached_segmenter(factory)


@pytest.fixture
def clean_cache() -> Iterator[None]:
    clear_segmenter_cache()
    yield
    clear_segmenter_cache()


def test_cache_loads_once_per_key_even_from_many_threads(clean_cache: None) -> None:
    factory = CountingFactory("a")
    threads = [threading.Thread(target=cached_segmenter, args=(factory,)) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cached_segmenter(CountingFactory("b"))
    assert model_load_counts() == {"a": 1, "b": 1}


def test_plugin_loads_the_model_once_per_worker_process_not_per_task() -> None:
    factory = CountingFactory("model-sha")
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(SegmenterPlugin(factory))
        owners = client.gather(client.map(_use_model, [factory] * 40, range(40)))
        counts = client.run(model_load_counts)
        worker_pids = client.run(os.getpid)
    assert {address: count for address, count in counts.items()} == {
        address: {"model-sha": 1} for address in worker_pids
    }
    assert set(owners) <= set(worker_pids.values())


def test_workers_are_spread_over_several_gpus_and_explicit_devices_are_kept() -> None:
    from antema_scale.pipeline.segmenters import worker_device

    assert [worker_device("auto", gpu_count=2, worker_name=i) for i in range(4)] == [
        "cuda:0",
        "cuda:1",
        "cuda:0",
        "cuda:1",
    ]
    assert worker_device("auto", gpu_count=1, worker_name=3) == "auto"
    assert worker_device("cpu", gpu_count=4, worker_name=1) == "cpu"
    assert worker_device("cuda:3", gpu_count=4, worker_name=1) == "cuda:3"
    assert worker_device("cuda", gpu_count=0) == "cuda"
