"""Where a result came from: the hardware, the software and the code revision.

Used by the pipeline manifest and by the benchmarks so that every number can be traced
to the machine and versions that produced it.
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

#: Libraries whose versions change results or speed.
TRACKED_PACKAGES: tuple[str, ...] = (
    "antema-scale",
    "numpy",
    "scipy",
    "scikit-image",
    "torch",
    "dask",
    "distributed",
    "zarr",
    "xarray",
    "pandas",
    "pyarrow",
    "ncempy",
    "tifffile",
)


def software_versions(packages: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    """Installed versions of ``packages`` (``"not installed"`` where absent), plus Python."""
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_fingerprint() -> dict[str, object]:
    """CPU model, usable cores, memory (GiB) and GPUs of this machine.

    Returns
    -------
    dict
        ``cpu_model``, ``cpu_count`` (cores this process may use), ``memory_gib``,
        ``platform``, ``gpus`` (list of ``{"name", "memory_gib"}``; empty without CUDA),
        ``cuda`` (torch's CUDA version or ``None``).
    """
    import psutil

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    info: dict[str, object] = {
        "cpu_model": _cpu_model(),
        "cpu_count": cores,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "gpus": [],
        "cuda": None,
    }
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return info
    if torch.cuda.is_available():
        info["cuda"] = torch.version.cuda
        info["gpus"] = [
            {
                "name": torch.cuda.get_device_name(i),
                "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1),
            }
            for i in range(torch.cuda.device_count())
        ]
    return info


def git_revision(path: str | os.PathLike[str] | None = None) -> str | None:
    """The git commit of the source tree at ``path`` (default: this package), or ``None``."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
