"""Where the work runs: one option set for a local, existing, batch-queue or Kubernetes cluster.

:func:`connect` yields a :class:`distributed.Client` for a :class:`ClusterSpec`:

- default: an embedded :class:`distributed.LocalCluster` sized to this machine (one
  single-threaded worker process per core on CPU; one worker per GPU, advertising the
  worker resource ``GPU=1`` and using the remaining cores as threads, when CUDA exists);
- ``scheduler="tcp://host:8786"`` or ``scheduler_file=...``: an existing Dask cluster;
- ``cluster="slurm" | "pbs" | "lsf" | "sge"``: workers submitted as batch jobs through
  dask-jobqueue (extra ``antema-scale[hpc]``);
- ``cluster="kubernetes"``: workers as pods through dask-kubernetes (extra
  ``antema-scale[k8s]``).

Segmentation tasks ask for the worker resource ``GPU`` whenever some worker advertises it
(see :func:`gpu_resource_available`), so that on a mixed cluster the network runs on GPU
workers while CPU threads read images and analyse masks.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distributed import Client

#: ``--cluster`` choices handled by dask-jobqueue, with the class that submits the jobs.
JOBQUEUE_CLUSTERS: dict[str, str] = {
    "slurm": "SLURMCluster",
    "pbs": "PBSCluster",
    "lsf": "LSFCluster",
    "sge": "SGECluster",
}

#: Every ``--cluster`` choice.
CLUSTER_KINDS: tuple[str, ...] = ("local", *JOBQUEUE_CLUSTERS, "kubernetes")

#: Worker resource name that marks a worker with a GPU.
GPU_RESOURCE = "GPU"


class ClusterConfigError(ValueError):
    """The cluster options contradict each other or name an unknown cluster kind."""


class ClusterBackendMissingError(ImportError):
    """The package that starts the requested kind of cluster is not installed."""


class NoWorkersError(TimeoutError):
    """No worker joined the cluster in time (jobs still queued, wrong address, ...)."""


@dataclass(frozen=True)
class ClusterSpec:
    """Which Dask cluster to run on and how big it is.

    Parameters
    ----------
    cluster : str
        One of :data:`CLUSTER_KINDS`; ignored when ``scheduler`` or ``scheduler_file`` is set.
    scheduler : str or None
        Address of an existing scheduler, e.g. ``"tcp://10.0.0.5:8786"``.
    scheduler_file : str or None
        JSON file written by ``dask scheduler --scheduler-file``.
    workers : int or None
        Worker processes (local) or jobs/pods (batch, Kubernetes); ``None``: one per core
        locally (one per GPU when CUDA exists), one job/pod otherwise.
    threads_per_worker : int or None
        Threads per worker; ``None``: 1 on CPU, the remaining cores on a GPU machine.
    memory_limit : str or None
        Memory per worker, e.g. ``"4GiB"``; ``None``: Dask's automatic share locally,
        ``"8GiB"`` per batch job.
    processes : bool
        Local only: worker processes (``True``) or threads of this process (``False``).
    dashboard_address : str or None
        Local only: where the dashboard listens (``":0"`` for a free port, ``None`` off).
    queue : str or None
        Batch queue / partition for jobqueue clusters.
    walltime : str or None
        Batch job wall time, e.g. ``"02:00:00"``.
    image : str or None
        Container image of Kubernetes workers.
    worker_profile : bool
        Local only: keep Dask's statistical profiler on in the workers (the dashboard's
        profile view). It keeps ~1,000 s of history, ~250-300 MiB per worker once full;
        ``False`` keeps worker memory flat.
    worker_timeout_s : float or None
        Seconds to wait for the first worker of an existing, batch or Kubernetes cluster
        before giving up with :class:`NoWorkersError`; ``None`` waits for ever (e.g. a
        long batch queue).
    """

    cluster: str = "local"
    scheduler: str | None = None
    scheduler_file: str | None = None
    workers: int | None = None
    threads_per_worker: int | None = None
    memory_limit: str | None = None
    processes: bool = True
    dashboard_address: str | None = ":8787"
    queue: str | None = None
    walltime: str | None = None
    image: str | None = None
    worker_profile: bool = True
    worker_timeout_s: float | None = 300.0

    def __post_init__(self) -> None:
        if self.cluster not in CLUSTER_KINDS:
            raise ClusterConfigError(
                f"unknown cluster {self.cluster!r}; choose one of {', '.join(CLUSTER_KINDS)}"
            )
        if self.scheduler and self.scheduler_file:
            raise ClusterConfigError(
                "give either a scheduler address or a scheduler file, not both"
            )
        if (self.scheduler or self.scheduler_file) and self.cluster != "local":
            raise ClusterConfigError(
                f"--cluster {self.cluster} starts a new cluster; it cannot be combined with "
                "--scheduler/--scheduler-file, which connect to an existing one"
            )
        if self.scheduler_file and not Path(self.scheduler_file).is_file():
            raise ClusterConfigError(f"scheduler file {self.scheduler_file!r} does not exist")
        for name in ("workers", "threads_per_worker"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ClusterConfigError(f"{name} must be >= 1, got {value}")

    @property
    def is_existing(self) -> bool:
        """Whether the spec connects to a running scheduler rather than starting one."""
        return bool(self.scheduler or self.scheduler_file)


def usable_cores() -> int:
    """Number of CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def cuda_device_count() -> int:
    """Number of CUDA devices torch sees on this machine (0 without CUDA or torch)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def local_cluster_shape(spec: ClusterSpec, *, cores: int, gpus: int) -> dict[str, Any]:
    """Keyword arguments of :class:`distributed.LocalCluster` for ``spec`` on this machine.

    Parameters
    ----------
    spec : ClusterSpec
        Requested sizes (``None`` fields are filled in).
    cores : int
        CPU cores available.
    gpus : int
        CUDA devices available.

    Returns
    -------
    dict
        ``n_workers``, ``threads_per_worker``, ``processes``, ``memory_limit``,
        ``dashboard_address`` and, with GPUs, ``resources={"GPU": 1}``.
    """
    if gpus > 0:
        workers = spec.workers or gpus
        threads = spec.threads_per_worker or max(1, cores // workers)
    else:
        workers = spec.workers or max(1, cores)
        threads = spec.threads_per_worker or 1
    shape: dict[str, Any] = {
        "n_workers": workers,
        "threads_per_worker": threads,
        "processes": spec.processes,
        "memory_limit": spec.memory_limit or "auto",
        "dashboard_address": spec.dashboard_address,
    }
    if gpus > 0:
        shape["resources"] = {GPU_RESOURCE: 1}
    return shape


def _import_backend(module: str, extra: str, kind: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ClusterBackendMissingError(
            f"--cluster {kind} needs the package {module.split('.')[0].replace('_', '-')}, "
            f"which is not installed; install it with: pip install 'antema-scale[{extra}]'"
        ) from exc


def jobqueue_cluster(spec: ClusterSpec) -> Any:
    """Start (but do not scale) a dask-jobqueue cluster for ``spec.cluster``.

    Each job runs one worker process with ``threads_per_worker`` cores and
    ``memory_limit`` memory.

    Raises
    ------
    ClusterBackendMissingError
        dask-jobqueue is not installed.
    """
    module = _import_backend("dask_jobqueue", "hpc", spec.cluster)
    cluster_class = getattr(module, JOBQUEUE_CLUSTERS[spec.cluster])
    options: dict[str, Any] = {
        "cores": spec.threads_per_worker or 1,
        "processes": 1,
        "memory": spec.memory_limit or "8GiB",
        "name": "antema-scale",
    }
    if spec.queue:
        options["queue"] = spec.queue
    if spec.walltime:
        options["walltime"] = spec.walltime
    return cluster_class(**options)


def kubernetes_cluster(spec: ClusterSpec) -> Any:
    """Start a dask-kubernetes operator cluster with ``spec.workers`` worker pods.

    Raises
    ------
    ClusterBackendMissingError
        dask-kubernetes is not installed.
    """
    module = _import_backend("dask_kubernetes.operator", "k8s", "kubernetes")
    options: dict[str, Any] = {"name": "antema-scale", "n_workers": spec.workers or 1}
    if spec.image:
        options["image"] = spec.image
    if spec.memory_limit:
        options["resources"] = {"limits": {"memory": spec.memory_limit}}
    return module.KubeCluster(**options)


@contextmanager
def connect(spec: ClusterSpec) -> Iterator[Client]:
    """A client on the cluster described by ``spec``; clusters started here are closed after.

    Parameters
    ----------
    spec : ClusterSpec
        Which cluster.

    Yields
    ------
    distributed.Client
    """
    from distributed import Client, LocalCluster

    with ExitStack() as stack:
        if spec.scheduler:
            client = stack.enter_context(Client(spec.scheduler))
        elif spec.scheduler_file:
            client = stack.enter_context(Client(scheduler_file=spec.scheduler_file))
        elif spec.cluster == "local":
            shape = local_cluster_shape(spec, cores=usable_cores(), gpus=cuda_device_count())
            if not spec.worker_profile:  # the workers take the config they are started with
                import dask

                stack.enter_context(dask.config.set({"distributed.worker.profile.enabled": False}))
            cluster = stack.enter_context(LocalCluster(**shape))
            client = stack.enter_context(Client(cluster))
        elif spec.cluster == "kubernetes":
            cluster = stack.enter_context(kubernetes_cluster(spec))
            client = stack.enter_context(Client(cluster))
        else:
            cluster = stack.enter_context(jobqueue_cluster(spec))
            cluster.scale(jobs=spec.workers or 1)
            client = stack.enter_context(Client(cluster))
        if spec.cluster != "local" or spec.is_existing:
            wait_for_a_worker(client, spec.worker_timeout_s)
        yield client


def wait_for_a_worker(client: Client, timeout_s: float | None) -> None:
    """Block until the cluster has at least one worker.

    Raises
    ------
    NoWorkersError
        If none joined within ``timeout_s`` seconds.
    """
    try:
        client.wait_for_workers(1, timeout=timeout_s)
    except TimeoutError as error:
        address = client.scheduler.address if client.scheduler else "the scheduler"
        raise NoWorkersError(
            f"no Dask worker joined {address} within {timeout_s:g} s: check that workers are "
            "running (batch jobs may still be queued; raise --worker-timeout to wait longer)"
        ) from error


def gpu_resource_available(client: Client) -> bool:
    """Whether any worker of ``client``'s cluster advertises the ``GPU`` resource."""
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    return any(info.get("resources", {}).get(GPU_RESOURCE, 0) > 0 for info in workers.values())


def cluster_description(client: Client) -> dict[str, Any]:
    """Scheduler address, dashboard link, workers and threads, for the manifest and the CLI."""
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    return {
        "scheduler": client.scheduler.address if client.scheduler else None,
        "dashboard": client.dashboard_link,
        "workers": len(workers),
        "threads": int(sum(info.get("nthreads", 0) for info in workers.values())),
        "gpu_workers": sum(
            1 for info in workers.values() if info.get("resources", {}).get(GPU_RESOURCE, 0) > 0
        ),
    }
