"""Cluster start-up options of the pipeline: sizes, conflicts, missing back-ends."""

from __future__ import annotations

import builtins
import importlib.util

import pytest
from distributed import LocalCluster

from antema_scale.pipeline.cluster import (
    ClusterBackendMissingError,
    ClusterConfigError,
    ClusterSpec,
    cluster_description,
    connect,
    gpu_resource_available,
    jobqueue_cluster,
    kubernetes_cluster,
    local_cluster_shape,
)


def test_local_cluster_on_cpu_uses_one_single_threaded_process_per_core() -> None:
    shape = local_cluster_shape(ClusterSpec(), cores=2, gpus=0)
    assert shape["n_workers"] == 2
    assert shape["threads_per_worker"] == 1
    assert shape["processes"] is True
    assert "resources" not in shape


def test_local_cluster_with_gpus_has_one_gpu_worker_per_device_and_cpu_threads() -> None:
    shape = local_cluster_shape(ClusterSpec(), cores=16, gpus=2)
    assert shape["n_workers"] == 2
    assert shape["threads_per_worker"] == 8
    assert shape["resources"] == {"GPU": 1}


def test_explicit_sizes_win_over_machine_defaults() -> None:
    spec = ClusterSpec(workers=3, threads_per_worker=2, memory_limit="1GiB")
    shape = local_cluster_shape(spec, cores=2, gpus=0)
    assert (shape["n_workers"], shape["threads_per_worker"], shape["memory_limit"]) == (
        3,
        2,
        "1GiB",
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cluster": "yarn"}, "unknown cluster 'yarn'"),
        (
            {"scheduler": "tcp://a:1", "scheduler_file": "x.json"},
            "either a scheduler address or a scheduler file",
        ),
        ({"cluster": "slurm", "scheduler": "tcp://a:1"}, "cannot be combined"),
        ({"scheduler_file": "/nonexistent/scheduler.json"}, "does not exist"),
        ({"workers": 0}, "workers must be >= 1"),
    ],
)
def test_contradictory_cluster_options_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ClusterConfigError, match=message):
        ClusterSpec(**kwargs)


def _hide_module(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    real_import = builtins.__import__

    def fake_import(name: str, *args: object, **kwargs: object) -> object:
        if name == prefix or name.startswith(prefix + "."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.setattr(importlib, "import_module", lambda name, package=None: fake_import(name))


def test_missing_jobqueue_names_the_hpc_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide_module(monkeypatch, "dask_jobqueue")
    with pytest.raises(ClusterBackendMissingError, match=r"pip install 'antema-scale\[hpc\]'"):
        jobqueue_cluster(ClusterSpec(cluster="slurm"))


def test_missing_kubernetes_names_the_k8s_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide_module(monkeypatch, "dask_kubernetes")
    with pytest.raises(ClusterBackendMissingError, match=r"pip install 'antema-scale\[k8s\]'"):
        kubernetes_cluster(ClusterSpec(cluster="kubernetes", workers=2))


@pytest.mark.skipif(
    importlib.util.find_spec("dask_jobqueue") is None, reason="dask-jobqueue not installed"
)
def test_slurm_job_script_carries_cores_memory_and_queue() -> None:
    spec = ClusterSpec(
        cluster="slurm", threads_per_worker=4, memory_limit="6GiB", queue="gpu", walltime="01:00:00"
    )
    with jobqueue_cluster(spec) as cluster:
        script = cluster.job_script()
    assert "#SBATCH -p gpu" in script
    assert "#SBATCH -t 01:00:00" in script
    assert "--nthreads 4" in script
    assert "--memory-limit 6.00GiB" in script


def test_in_process_local_cluster_reports_workers_and_threads() -> None:
    spec = ClusterSpec(workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
    with connect(spec) as client:
        description = cluster_description(client)
        assert not gpu_resource_available(client)
    assert description["workers"] == 2
    assert description["threads"] == 2
    assert description["scheduler"].startswith("inproc://")


def test_a_scheduler_without_workers_is_a_clear_error() -> None:
    from antema_scale.pipeline.cluster import NoWorkersError

    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as empty:
        spec = ClusterSpec(scheduler=empty.scheduler_address, worker_timeout_s=0.5)
        with (
            pytest.raises(NoWorkersError, match=r"no Dask worker joined .* within 0.5 s"),
            connect(spec),
        ):
            pass


def _profiler_enabled() -> bool:
    import dask

    return bool(dask.config.get("distributed.worker.profile.enabled"))


@pytest.mark.parametrize("profile", [True, False])
def test_worker_profile_switch_reaches_worker_processes(profile: bool) -> None:
    import dask

    spec = ClusterSpec(
        workers=1, threads_per_worker=1, dashboard_address=None, worker_profile=profile
    )
    with connect(spec) as client:
        assert list(client.run(_profiler_enabled).values()) == [profile]
    assert dask.config.get("distributed.worker.profile.enabled") is True  # restored here
