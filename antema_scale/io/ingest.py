"""Many microscope files -> one Zarr store, in parallel with Dask.

:func:`ingest` runs in two Dask passes over the input files:

1. hash every file (SHA-256), so files already in the store, and duplicate copies of one
   file among the inputs, are skipped before anything is parsed;
2. read each new file with :func:`~antema_scale.io.read_micrograph` and write it into its
   own store group (:func:`~antema_scale.io.store.write_image`).

Both passes run on a ``distributed.Client`` when one is given (``client.submit``),
otherwise on Dask's local scheduler (threads by default). Workers open the input files and
the store by absolute path, so on a multi-machine cluster both must be on a shared file
system. A file that fails becomes an error row
with the typed error's class name and message; the other files are still ingested.
"""

from __future__ import annotations

import glob
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from antema_scale.io.errors import MicrographError
from antema_scale.io.micrograph import SUPPORTED_SUFFIXES, file_sha256, read_micrograph
from antema_scale.io.store import (
    INDEX_COLUMNS,
    create_store,
    image_id_for,
    open_store,
    write_image,
)

__all__ = [
    "IngestPlan",
    "IngestReport",
    "IngestTask",
    "collect_inputs",
    "ingest",
    "ingest_file",
    "plan_ingest",
]

PixelSize = float | tuple[float, float] | None

_SKIPPED_COLUMNS = ["source", "sha256", "image_id", "reason"]
_ERROR_COLUMNS = ["source", "error", "message"]


@dataclass
class IngestReport:
    """What :func:`ingest` did with each input file.

    Attributes
    ----------
    store : pathlib.Path
        The store written to.
    ingested : pandas.DataFrame
        One row per image written (the store's index columns plus ``bytes``).
    skipped : pandas.DataFrame
        ``source, sha256, image_id, reason``: already in the store, duplicate input, or
        a file type that is not a micrograph (found while walking a folder).
    errors : pandas.DataFrame
        ``source, error, message``: ``error`` is the exception class name
        (``CorruptFileError``, ``MissingPixelSizeError``, ...).
    seconds : float
        Wall-clock time of the whole ingest.
    """

    store: Path
    ingested: pd.DataFrame
    skipped: pd.DataFrame
    errors: pd.DataFrame
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no file failed."""
        return self.errors.empty

    @property
    def bytes_ingested(self) -> int:
        """Total size in bytes of the source files written to the store."""
        return int(self.ingested["bytes"].sum()) if not self.ingested.empty else 0

    def summary(self) -> dict[str, int | float]:
        """Counts and throughput: ``ingested, skipped, errors, bytes, seconds, mb_per_s``."""
        megabytes = self.bytes_ingested / 1e6
        return {
            "ingested": len(self.ingested),
            "skipped": len(self.skipped),
            "errors": len(self.errors),
            "bytes": self.bytes_ingested,
            "seconds": self.seconds,
            "mb_per_s": megabytes / self.seconds if self.seconds > 0 else float("nan"),
        }


@dataclass(frozen=True)
class _Candidate:
    path: Path
    problem: tuple[str, str] | None = None  # (error class, message) found while collecting


def _resolve_emi(path: Path) -> Path:
    """A TIA ``.emi`` stands for its ``<stem>_1.ser``; keep the .emi when none exists."""
    if path.suffix.lower() != ".emi":
        return path
    series = sorted(path.parent.glob(f"{path.stem}_*.ser"))
    return series[0] if series else path


def collect_inputs(inputs: Iterable[str | Path]) -> tuple[list[_Candidate], list[Path]]:
    """Expand files, folders (recursively) and glob patterns into files to ingest.

    Parameters
    ----------
    inputs : iterable of str or pathlib.Path
        Files, directories or glob patterns (``**`` allowed).

    Returns
    -------
    candidates : list
        Unique files to ingest, in input order (``.emi`` replaced by its ``.ser``);
        inputs that match nothing carry a ``FileNotFoundError`` problem.
    ignored : list of pathlib.Path
        Files found inside folders whose suffix is not a micrograph format.
    """
    candidates: list[_Candidate] = []
    ignored: list[Path] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        resolved = _resolve_emi(path).resolve()
        if resolved not in seen:
            seen.add(resolved)
            candidates.append(_Candidate(resolved))

    def add_folder(folder: Path) -> None:
        for path in sorted(item for item in folder.rglob("*") if item.is_file()):
            if path.suffix.lower() in SUPPORTED_SUFFIXES:
                add(path)
            else:
                ignored.append(path)

    for item in inputs:
        path = Path(item)
        if path.is_dir():
            add_folder(path)
        elif path.is_file():
            add(path)
        else:
            matches = sorted(glob.glob(str(item), recursive=True))
            if not matches:
                message = f"{item}: no such file, folder or matching pattern"
                candidates.append(_Candidate(path, ("FileNotFoundError", message)))
            for match in matches:
                matched = Path(match)
                if matched.is_dir():
                    add_folder(matched)
                else:
                    add(matched)
    return candidates, ignored


def _hash_task(path: Path) -> dict[str, Any]:
    """Pass 1 task: SHA-256 and size of one file, or the error reading it."""
    try:
        return {"source": str(path), "sha256": file_sha256(path), "bytes": path.stat().st_size}
    except OSError as error:
        return {"source": str(path), "error": type(error).__name__, "message": str(error)}


def _ingest_task(
    path: Path, sha256: str, size: int, store_path: str, pixel_size_nm: PixelSize
) -> dict[str, Any]:
    """Pass 2 task: read one file and write it into its own store group."""
    try:
        image = read_micrograph(path, pixel_size_nm=pixel_size_nm, sha256=sha256)
        row = write_image(store_path, image, image_id_for(path, sha256))
        return row | {"bytes": size}
    except (MicrographError, OSError, ValueError) as error:
        return {"source": str(path), "error": type(error).__name__, "message": str(error)}
    except Exception as error:  # a bad file never stops the run: record what happened
        message = f"{path}: unexpected {type(error).__name__}: {error}"
        return {"source": str(path), "error": type(error).__name__, "message": message}


def _run(
    task: Callable[..., dict[str, Any]],
    arguments: Sequence[tuple[Any, ...]],
    *,
    client: Any,
    scheduler: str | None,
    on_done: Callable[[], None],
) -> list[dict[str, Any]]:
    """Run ``task(*args)`` for every argument tuple on Dask; call ``on_done`` per task."""
    if not arguments:
        return []
    if client is not None:
        from distributed import as_completed

        futures = [client.submit(task, *args, pure=False) for args in arguments]
        for _future in as_completed(futures, loop=client.loop):
            on_done()
        return client.gather(futures)

    import dask
    from dask.callbacks import Callback

    class _Progress(Callback):
        def _posttask(self, *_args: Any) -> None:
            on_done()

    delayed_task = dask.delayed(task, pure=False)
    with _Progress():
        results = dask.compute(
            *[delayed_task(*args) for args in arguments], scheduler=scheduler or "threads"
        )
    return list(results)


@dataclass
class IngestPlan:
    """The outcome of the hashing pass: which files still have to be read and written.

    Attributes
    ----------
    store : pathlib.Path
        The store.
    todo : list of IngestTask
        New files, one task each (:func:`ingest_file`).
    skipped : list of dict
        ``source, sha256, image_id, reason`` rows (already stored, duplicate, not a
        micrograph).
    errors : list of dict
        ``source, error, message`` rows of files that could not be found or hashed.
    """

    store: Path
    todo: list[IngestTask]
    skipped: list[dict[str, Any]]
    errors: list[dict[str, Any]]


@dataclass(frozen=True)
class IngestTask:
    """One new file to read and write into the store (the arguments of :func:`ingest_file`)."""

    path: Path
    sha256: str
    size: int
    store_path: str
    pixel_size_nm: PixelSize
    image_id: str


def ingest_file(task: IngestTask) -> dict[str, Any]:
    """Read one file and write it into its own store group (a Dask task).

    Returns
    -------
    dict
        The image's index row plus ``bytes``, or ``source, error, message`` when the file
        cannot be read (the error class name and its message); never raises for a bad
        file.
    """
    return _ingest_task(task.path, task.sha256, task.size, task.store_path, task.pixel_size_nm)


def plan_ingest(
    inputs: Iterable[str | Path] | str | Path,
    store: str | Path,
    *,
    pixel_size_nm: PixelSize = None,
    client: Any = None,
    scheduler: str | None = None,
    progress: bool = True,
) -> IngestPlan:
    """Collect the input files and hash them (in parallel with Dask): the ingest to do.

    Files whose SHA-256 is already in the store, and duplicate copies among the inputs,
    are skipped; every other file becomes an :class:`IngestTask`. Parameters as for
    :func:`ingest`.
    """
    if isinstance(inputs, str | Path):
        inputs = [inputs]
    target = create_store(store)
    known = dict(zip(target.index["sha256"], target.index["image_id"], strict=True))
    stored_shas = set(known)
    candidates, ignored = collect_inputs(inputs)
    errors: list[dict[str, Any]] = [
        {"source": str(c.path), "error": c.problem[0], "message": c.problem[1]}
        for c in candidates
        if c.problem
    ]
    skipped: list[dict[str, Any]] = [
        {"source": str(path), "sha256": "", "image_id": "", "reason": "not a micrograph file type"}
        for path in ignored
    ]
    files = [c.path for c in candidates if c.problem is None]
    with _progress_bar(progress) as advance:
        hashed = _run(
            _hash_task,
            [(path,) for path in files],
            client=client,
            scheduler=scheduler,
            on_done=advance("hashing", len(files)),
        )
    todo: list[IngestTask] = []
    for row in hashed:
        if "error" in row:
            errors.append(row)
            continue
        sha = row["sha256"]
        if sha in known:
            reason = "already in store" if sha in stored_shas else "duplicate of another input"
            skipped.append(row | {"image_id": known[sha], "reason": reason})
            continue
        known[sha] = image_id_for(row["source"], sha)
        todo.append(
            IngestTask(
                Path(row["source"]), sha, row["bytes"], str(target.path), pixel_size_nm, known[sha]
            )
        )
    return IngestPlan(target.path, todo, skipped, errors)


def ingest(
    inputs: Iterable[str | Path] | str | Path,
    store: str | Path,
    *,
    pixel_size_nm: PixelSize = None,
    client: Any = None,
    scheduler: str | None = None,
    progress: bool = True,
) -> IngestReport:
    """Ingest microscope files into a Zarr v3 store, in parallel with Dask.

    Parameters
    ----------
    inputs : path, pattern, or iterable of them
        Files, folders (searched recursively for micrograph suffixes) and glob patterns.
    store : str or pathlib.Path
        Store directory; created when absent, added to when present.
    pixel_size_nm : float or (float, float), optional
        Pixel size in nm for every file (overrides file calibration; needed for png/jpg).
    client : distributed.Client, optional
        Run on this Dask cluster; by default Dask's local scheduler is used.
    scheduler : str, optional
        Local scheduler when no client: ``"threads"`` (default), ``"processes"``,
        ``"synchronous"``.
    progress : bool, default True
        Show a rich progress bar.

    Returns
    -------
    IngestReport
        Ingested rows, skipped files (already stored by SHA-256, duplicates, not
        micrographs) and error rows (typed error class and message).
    """
    started = time.perf_counter()
    plan = plan_ingest(
        inputs,
        store,
        pixel_size_nm=pixel_size_nm,
        client=client,
        scheduler=scheduler,
        progress=progress,
    )
    with _progress_bar(progress) as advance:
        results = _run(
            ingest_file,
            [(task,) for task in plan.todo],
            client=client,
            scheduler=scheduler,
            on_done=advance("ingesting", len(plan.todo)),
        )
    ingested = [row for row in results if "error" not in row]
    errors = plan.errors + [row for row in results if "error" in row]
    target = open_store(plan.store)
    if ingested or not (target.path / "index.parquet").is_file():
        target.rebuild_index()
    return IngestReport(
        store=target.path,
        ingested=pd.DataFrame(ingested, columns=[*INDEX_COLUMNS, "bytes"]),
        skipped=pd.DataFrame(plan.skipped, columns=_SKIPPED_COLUMNS),
        errors=pd.DataFrame(errors, columns=_ERROR_COLUMNS),
        seconds=time.perf_counter() - started,
    )


class _progress_bar:  # noqa: N801 - used as a context manager, reads like a function
    """Rich progress bar with one task per pass; a no-op when disabled."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Any = None

    def __enter__(self) -> Callable[[str, int], Callable[[], None]]:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description:<10}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            self._progress.start()
        return self._advance

    def _advance(self, description: str, total: int) -> Callable[[], None]:
        if self._progress is None:
            return lambda: None
        task_id = self._progress.add_task(description, total=total)
        return lambda: self._progress.advance(task_id)

    def __exit__(self, *_exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
