"""Benchmark records: one JSON file (fingerprint + every number) and a markdown rendering.

A record is a plain dict with ``"format": RECORD_FORMAT``; ``benchmarks/summarize.py``
collects the records in ``benchmarks/results/`` into the summary table of
``benchmarks/README.md``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from antema_scale.benchmark.speed import STAGES

#: Identifies benchmark records among other JSON files.
RECORD_FORMAT = "antema-scale-bench-v1"


def fingerprint() -> dict[str, Any]:
    """Hardware, software versions and git revision (:mod:`antema_scale.provenance`)."""
    from antema_scale.provenance import git_revision, hardware_fingerprint, software_versions

    return {
        "hardware": hardware_fingerprint(),
        "software": software_versions(),
        "git_sha": git_revision(),
    }


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_record(record: dict[str, Any], path: str | Path) -> tuple[Path, Path]:
    """Write ``record`` as JSON at ``path`` and its markdown next to it (``.md``).

    Returns
    -------
    (Path, Path)
        The JSON and markdown files.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(_json_safe(record), indent=2) + "\n")
    markdown = target.with_suffix(".md")
    markdown.write_text(record_markdown(record))
    return target, markdown


def read_records(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """The benchmark records among ``paths`` (other JSON files are skipped), with ``file``."""
    records = []
    for path in sorted(Path(p) for p in paths):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("format") == RECORD_FORMAT:
            data["file"] = path.name
            records.append(data)
    return records


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def machine_line(record: dict[str, Any]) -> str:
    """One line naming the machine: CPU model x cores, GPUs, memory."""
    hardware = record.get("fingerprint", {}).get("hardware", {})
    gpus = hardware.get("gpus") or []
    gpu = ", ".join(f"{g['name']} ({g['memory_gib']} GiB)" for g in gpus) or "no GPU"
    return (
        f"{hardware.get('cpu_model', '?')} x {hardware.get('cpu_count', '?')} cores, "
        f"{hardware.get('memory_gib', '?')} GiB RAM, {gpu}"
    )


def _stage_cell(seconds: float, serial: dict[str, Any]) -> str:
    """``"s/image (MP/s)"`` of one stage of a serial loop."""
    if seconds <= 0:
        return "0"
    return f"{_fmt(seconds / serial['images'], 3)} ({_fmt(serial['megapixels'] / seconds, 2)})"


def architecture_summary(architecture: dict[str, Any] | None) -> str:
    """Short description of a model file's ``architecture`` metadata: ``"w16"`` for one
    network of base width 16, ``"2 x w16"`` for an ensemble of two, ``"?"`` if unknown."""
    if not architecture:
        return "?"
    members = architecture.get("members")
    if isinstance(members, list) and members:
        widths = [f"w{m.get('base_width', '?')}" for m in members if isinstance(m, dict)]
        return f"{len(widths)} x {widths[0]}" if len(set(widths)) == 1 else " + ".join(widths)
    return f"w{architecture.get('base_width', '?')}"


def _epochs_text(epochs: int | list[int | None] | None) -> str:
    """``"30"`` for one network, ``"30 + 40"`` for an ensemble's members, ``""`` if unknown."""
    if isinstance(epochs, list):
        return " + ".join("?" if e is None else str(e) for e in epochs)
    return "" if epochs is None else str(epochs)


def model_line(speed: dict[str, Any]) -> str:
    """Network width, training epochs and checksum of the speed runs' model, in words."""
    model = speed.get("model") or {}
    if not model:
        return "no network"
    network = architecture_summary(model.get("architecture"))
    trained = "trained" if speed.get("trained_model") else "untrained stand-in"
    epochs = _epochs_text(model.get("epochs_done"))
    return (
        f"network {network}, {trained}"
        + (f" ({epochs} epochs)" if epochs else "")
        + f", sha256 {str(model.get('weights_sha256'))[:10]}"
    )


def _speed_lines(speed: dict[str, Any]) -> list[str]:
    lines = ["## Speed", ""]
    lines += [
        f"Segmenter: {speed.get('segmenter', '?')}; device `{speed.get('device', '?')}`; "
        f"analysis mode `{speed.get('separation_mode', '?')}`; {model_line(speed)}.",
        "",
    ]
    for size_block in speed.get("sizes", []):
        size = size_block["size"]
        serials = size_block.get("serial") or []
        lines += [f"### {size} x {size} px, {size_block['images']} images", ""]
        if serials:
            lines += ["Serial per-image loop by stage: seconds per image (megapixels/s):", ""]
            lines += _table(
                ["torch threads", *STAGES, "total"],
                [
                    [s["threads"]]
                    + [_stage_cell(s["stage_seconds"][stage], s) for stage in STAGES]
                    + [_stage_cell(s["seconds"], s)]
                    for s in serials
                ],
            )
        rows = []
        for serial in serials:
            rows.append(
                [
                    f"serial loop, {serial['threads']} thread(s)",
                    _fmt((serial.get("load_average") or [None])[0], 1),
                    _fmt(serial["images_per_s"], 3),
                    _fmt(serial["megapixels_per_s"], 2),
                    _fmt(serial["model_load_s"] + serial["first_image_s"], 1),
                    _fmt(serial["rss_peak_mib"], 0),
                    _fmt(serial.get("gpu_peak_mib"), 0),
                ]
            )
        for run in size_block.get("pipeline", []):
            memory = run["worker_memory"]
            rows.append(
                [
                    f"pipeline, {run['workers']} worker(s)",
                    _fmt((run.get("load_average") or [None])[0], 1),
                    _fmt(run["images_per_s"], 3),
                    _fmt(run["megapixels_per_s"], 2),
                    _fmt(run["cold_start_s"], 1),
                    _fmt(max(m["rss_peak_mib"] for m in memory), 0) if memory else "–",
                    _fmt(max((m["gpu_peak_mib"] or 0) for m in memory), 0)
                    if memory and any(m["gpu_peak_mib"] for m in memory)
                    else "–",
                ]
            )
        lines += _table(
            [
                "run",
                "load (1 min)",
                "images/s",
                "MP/s",
                "cold start s",
                "peak RSS/worker MiB",
                "peak GPU MiB",
            ],
            rows,
        )
        scaling = size_block.get("scaling", [])
        if scaling:
            lines += _table(
                ["workers", "seconds", "speed-up", "efficiency"],
                [
                    [
                        r["workers"],
                        _fmt(r["seconds"], 2),
                        _fmt(r["speedup"], 2),
                        _fmt(r["efficiency"], 2),
                    ]
                    for r in scaling
                ],
            )
        for ratio in size_block.get("pipeline_vs_serial") or []:
            lines += [
                f"Pipeline ({ratio['workers']} workers) vs serial loop "
                f"({ratio['serial_threads']} torch threads): "
                f"**{_fmt(ratio['speedup'], 2)}x** images/s.",
                "",
            ]
    separation = speed.get("separation", {})
    if separation.get("rows"):
        lines += ["### Particle analysis of the true masks vs the full-frame reference port", ""]
        has_ref = separation.get("reference_available")
        header = ["image", "px", "true", "default s (found)", "uecs-paper s (found)"]
        if has_ref:
            header += ["reference s (found)", "speed-up default", "speed-up uecs-paper"]
        rows = []
        for r in separation["rows"]:
            row = [
                r["image"],
                r["size"],
                r["true_particles"],
                f"{_fmt(r['default_s'])} ({r['default_found']})",
                f"{_fmt(r['uecs_paper_s'])} ({r['uecs_paper_found']})",
            ]
            if has_ref:
                row += [
                    f"{_fmt(r['reference_s'])} ({r['reference_found']})",
                    f"{_fmt(r['speedup_default_vs_reference'], 1)}x",
                    f"{_fmt(r['speedup_uecs_paper_vs_reference'], 1)}x",
                ]
            rows.append(row)
        lines += _table(header, rows)
    return lines


def _epochs_note(model_info: dict[str, Any]) -> str:
    """``", network w16, E epochs"`` from a model summary (empty when unknown)."""
    if not model_info:
        return ""
    network = architecture_summary(model_info.get("architecture"))
    epochs = _epochs_text(model_info.get("epochs_done"))
    return f", network {network}" + (f", {epochs} epochs" if epochs else "")


def _accuracy_lines(accuracy: dict[str, Any]) -> list[str]:
    lines = ["## Accuracy", ""]
    lines += [
        f"Images per group: {accuracy.get('images', {})}. Default separation mode: "
        f"`{accuracy.get('default_mode')}`. Model: {accuracy.get('model', '?')}"
        + _epochs_note(accuracy.get("model_info") or {})
        + ".",
        "",
        "### Segmentation (pixel level)",
        "",
    ]
    lines += _table(
        [
            "segmenter",
            "group",
            "IoU particle",
            "Dice particle",
            "IoU background",
            "accuracy",
            "component F1",
        ],
        [
            [
                r["segmenter"],
                r["group"],
                _fmt(r["iou_particle"], 3),
                _fmt(r["dice_particle"], 3),
                _fmt(r["iou_background"], 3),
                _fmt(r["global_accuracy"], 3),
                _fmt(r["component_f1"], 3),
            ]
            for r in accuracy.get("pixel", [])
        ],
    )
    lines += ["### Particles (instance F1 at IoU 0.5, diameters, split pairs)", ""]
    lines += _table(
        [
            "segmenter",
            "mode",
            "group",
            "F1",
            "precision",
            "recall",
            "ECD mean err nm",
            "ECD std err nm",
            "|err| matched",
            "pairs split",
        ],
        [
            [
                r["segmenter"],
                r["mode"],
                r["group"],
                _fmt(r["f1"], 3),
                _fmt(r["precision"], 3),
                _fmt(r["recall"], 3),
                _fmt(r["diameter_mean_error_nm"], 2),
                _fmt(r["diameter_std_error_nm"], 2),
                _fmt(r["matched_abs_relative_error"], 3),
                f"{_fmt(r['split_fraction'], 2)} of {r['n_pairs']}",
            ]
            for r in accuracy.get("particles", [])
        ],
    )
    return lines


def record_markdown(record: dict[str, Any]) -> str:
    """The record as markdown: machine, load, speed tables, accuracy tables, notes."""
    fp = record.get("fingerprint", {})
    software = fp.get("software", {})
    lines = [
        f"# antema-scale benchmark `{record.get('name', '')}`",
        "",
        f"- machine: {machine_line(record)}",
        f"- software: antema-scale {software.get('antema-scale', '?')} (git "
        f"{(fp.get('git_sha') or '?')[:10]}), torch {software.get('torch', '?')}, "
        f"CUDA {fp.get('hardware', {}).get('cuda') or '–'}, dask {software.get('dask', '?')}, "
        f"Python {software.get('python', '?')}",
        f"- load average (1/5/15 min) at start {record.get('load_average_start')}, "
        f"at end {record.get('load_average_end')}",
        f"- started {record.get('started', '?')}, took {_fmt(record.get('total_seconds'), 0)} s; "
        f"command `{record.get('command', '')}`",
        "",
    ]
    if record.get("complete") is False:
        lines += ["**Partial record**: the run stopped after the speed part.", ""]
    if record.get("speed"):
        lines += _speed_lines(record["speed"])
    if record.get("accuracy"):
        lines += _accuracy_lines(record["accuracy"])
    notes = record.get("notes", [])
    if notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in notes] + [""]
    return "\n".join(lines)


#: Markers around the generated part of ``benchmarks/README.md``.
SUMMARY_START = "<!-- summary:start (generated by benchmarks/summarize.py; do not edit) -->"
SUMMARY_END = "<!-- summary:end -->"


def _median(values: Sequence[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.median(finite)) if finite else None


def speed_summary_rows(record: dict[str, Any]) -> list[list[str]]:
    """One summary row per image size of a record's speed part."""
    speed = record.get("speed") or {}
    hardware = record.get("fingerprint", {}).get("hardware", {})
    gpus = hardware.get("gpus") or []
    machine = f"{hardware.get('cpu_model', '?')} x{hardware.get('cpu_count', '?')}"
    if gpus:
        machine += " + " + ", ".join(g["name"] for g in gpus)
    separation_rows = (speed.get("separation") or {}).get("rows", [])
    model = speed.get("model") or {}
    network = (
        f"{architecture_summary(model.get('architecture'))}, "
        + (
            f"{_epochs_text(model.get('epochs_done'))} epochs"
            if speed.get("trained_model")
            else "untrained"
        )
        if model
        else "–"
    )
    rows = []
    for block in speed.get("sizes", []):
        serial = (block.get("serial") or [None])[0]
        pipeline = block.get("pipeline") or []
        widest = max(pipeline, key=lambda run: run["workers"]) if pipeline else None
        scaling = {r["workers"]: r for r in block.get("scaling", [])}
        ratio = (block.get("pipeline_vs_serial") or [None])[0]
        memory = [m["rss_peak_mib"] for m in widest["worker_memory"]] if widest else []
        separation = _median(
            [
                r.get("speedup_default_vs_reference")
                for r in separation_rows
                if r.get("size") == block["size"]
            ]
        )
        rows.append(
            [
                record.get("file", record.get("name", "")),
                machine,
                _fmt(((widest or {}).get("load_average") or [None])[0], 1),
                "GPU" if gpus else "CPU",
                f"{block['size']}² x {block['images']}",
                _fmt(serial["images_per_s"], 3) if serial else "–",
                f"{_fmt(widest['images_per_s'], 3)} ({widest['workers']} w)" if widest else "–",
                _fmt(widest["megapixels_per_s"], 2) if widest else "–",
                f"{_fmt(ratio['speedup'], 2)}x" if ratio else "–",
                _fmt(scaling[widest["workers"]]["efficiency"], 2) if widest else "–",
                _fmt(widest["cold_start_s"], 1) if widest else "–",
                _fmt(max(memory), 0) if memory else "–",
                f"{_fmt(separation, 1)}x" if separation else "–",
                network,
            ]
        )
    return rows


SPEED_SUMMARY_HEADER = (
    "result file",
    "machine",
    "load (1 min)",
    "device",
    "images",
    "serial img/s (all cores)",
    "pipeline img/s",
    "pipeline MP/s",
    "pipeline / serial",
    "scaling efficiency",
    "cold start s",
    "peak RSS / worker MiB",
    "separation vs full-frame",
    "network",
)
ACCURACY_SUMMARY_HEADER = (
    "result file",
    "segmenter",
    "mode",
    "group",
    "images",
    "pixel IoU",
    "pixel Dice",
    "instance F1",
    "pairs split",
    "ECD mean err nm",
    "ECD std err nm",
)


def accuracy_summary_rows(
    record: dict[str, Any], modes: Sequence[str] | None = None
) -> list[list[str]]:
    """Summary rows of a record's accuracy part: each segmenter in the default mode and
    the paper's ``uecs-paper`` (or ``modes``), per test group."""
    accuracy = record.get("accuracy") or {}
    if not accuracy:
        return []
    chosen = (
        list(modes) if modes else list(dict.fromkeys([accuracy.get("default_mode"), "uecs-paper"]))
    )
    pixel = {(r["segmenter"], r["group"]): r for r in accuracy.get("pixel", [])}
    rows = []
    for r in accuracy.get("particles", []):
        if r["mode"] not in chosen:
            continue
        px = pixel.get((r["segmenter"], r["group"]))
        rows.append(
            [
                record.get("file", record.get("name", "")),
                r["segmenter"],
                r["mode"],
                r["group"],
                r["images"],
                _fmt(px["iou_particle"], 3)
                if px
                else ("1 (truth)" if r["segmenter"] == "truth" else "–"),
                _fmt(px["dice_particle"], 3)
                if px
                else ("1 (truth)" if r["segmenter"] == "truth" else "–"),
                _fmt(r["f1"], 3),
                f"{_fmt(r['split_fraction'], 2)} of {r['n_pairs']}",
                _fmt(r["diameter_mean_error_nm"], 2),
                _fmt(r["diameter_std_error_nm"], 2),
            ]
        )
    return rows


def summary_markdown(records: Sequence[dict[str, Any]]) -> str:
    """Markdown summary of several records: one speed table and one accuracy table."""
    speed_rows = [row for record in records for row in speed_summary_rows(record)]
    accuracy_rows = [row for record in records for row in accuracy_summary_rows(record)]
    lines = ["### Speed", ""]
    lines += (
        _table(SPEED_SUMMARY_HEADER, speed_rows) if speed_rows else ["No speed results yet.", ""]
    )
    lines += ["### Accuracy", ""]
    lines += (
        _table(ACCURACY_SUMMARY_HEADER, accuracy_rows)
        if accuracy_rows
        else ["No accuracy results yet.", ""]
    )
    return "\n".join(lines)


def replace_summary(readme_text: str, summary: str) -> str:
    """``readme_text`` with the text between :data:`SUMMARY_START` and :data:`SUMMARY_END`
    replaced by ``summary`` (the markers are appended when absent)."""
    block = f"{SUMMARY_START}\n\n{summary.rstrip()}\n\n{SUMMARY_END}"
    if SUMMARY_START in readme_text and SUMMARY_END in readme_text:
        head, rest = readme_text.split(SUMMARY_START, 1)
        _, tail = rest.split(SUMMARY_END, 1)
        return head + block + tail
    return readme_text.rstrip() + "\n\n" + block + "\n"
