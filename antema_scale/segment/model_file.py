"""Model files: a torch state dict plus JSON-safe metadata, loaded with ``weights_only``.

A model file is ``torch.save({"format": ..., "state_dict": ..., "metadata": {...}})``. It
contains tensors and plain Python values only, so :func:`load_model` reads it with
``torch.load(weights_only=True)`` and never unpickles code. The metadata records the
architecture, the pre-processing, the working pixel-size range, the data the model saw,
its validation/test metrics, the training command and the sha256 of the weights
(checked on every load).

A model file may hold an ensemble of networks (:class:`~antema_scale.segment.network.
NetworkEnsemble`, written by :func:`combine_models`): it loads and predicts like a single
network, at the cost of one network per member.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from antema_scale.segment.network import DeepLabV3Plus, NetworkEnsemble, build_network
from antema_scale.segment.preprocess import Preprocessing

__all__ = [
    "DEFAULT_MODEL_NAME",
    "FORMAT",
    "ModelFileError",
    "SegmentationModel",
    "combine_models",
    "default_model_path",
    "export_model",
    "load_model",
    "resolve_device",
    "save_model",
    "training_records",
    "weights_sha256",
]

#: Identifier written into every model file.
FORMAT = "antema-scale-segmentation-v1"
#: File name of the model shipped in ``antema_scale/models/``.
DEFAULT_MODEL_NAME = "deeplabv3plus_resnet18_default.pt"


class ModelFileError(ValueError):
    """A model file is missing, unreadable, of another format, or its weights are altered."""


@dataclass
class SegmentationModel:
    """A network ready for inference, with the metadata of its model file.

    Attributes
    ----------
    network : DeepLabV3Plus or NetworkEnsemble
        The network, in eval mode, on :attr:`device`.
    preprocessing : Preprocessing
        How images are prepared for it (working pixel-size range in nm/px, etc.).
    metadata : dict
        Everything recorded in the model file.
    device : torch.device
        Where the network lives.
    """

    network: DeepLabV3Plus | NetworkEnsemble
    preprocessing: Preprocessing
    metadata: dict[str, Any] = field(default_factory=dict)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    _inference: tuple[torch.nn.Module, torch.device, torch.nn.Module] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def to(self, device: str | torch.device) -> SegmentationModel:
        """Move the network to ``device`` (``auto|cpu|cuda|mps`` or a torch device)."""
        self.device = resolve_device(device)
        self.network.to(self.device)
        return self

    def inference_network(self) -> torch.nn.Module:
        """The network prepared for inference (batch norm folded, channels-last; see
        :mod:`antema_scale.segment.inference_network`), built once per network and device.

        It is a copy: replace :attr:`network` (not its weights in place) to change the model.
        """
        from antema_scale.segment.inference_network import inference_network

        cached = self._inference
        if cached is None or cached[0] is not self.network or cached[1] != self.device:
            cached = (self.network, self.device, inference_network(self.network))
            self._inference = cached
        return cached[2]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto" | "cpu" | "cuda" | "cuda:N" | "mps"`` into a usable torch device.

    ``auto`` picks CUDA, then Apple MPS, then the CPU. Asking for a device that is not
    available raises ``ValueError`` naming it.
    """
    if isinstance(device, torch.device):
        return device
    name = str(device).lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    if name == "mps" and not (
        getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    ):
        raise ValueError("device 'mps' requested but Apple MPS is not available")
    if not (name == "cpu" or name == "mps" or name.startswith("cuda")):
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or mps")
    return torch.device(name)


def weights_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 over the state dict: names and raw tensor bytes, in sorted name order."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().to("cpu").contiguous()
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(
            tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
        )
    return digest.hexdigest()


def save_model(
    path: str | Path,
    network: DeepLabV3Plus | NetworkEnsemble,
    preprocessing: Preprocessing,
    metadata: dict[str, Any] | None = None,
    *,
    half: bool = False,
) -> dict[str, Any]:
    """Write a model file; returns the metadata written.

    Parameters
    ----------
    path : str or Path
        Destination (``.pt``); parent folders are created.
    network : DeepLabV3Plus or NetworkEnsemble
        The trained network.
    preprocessing : Preprocessing
        Its pre-processing.
    metadata : dict, optional
        Extra JSON-safe metadata (data seen, metrics, training command, ...).
    half : bool
        Store floating-point weights as float16 (halves the file size).
    """
    state = {k: v.detach().to("cpu").clone() for k, v in network.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    meta: dict[str, Any] = dict(metadata or {})
    meta["architecture"] = {"name": type(network).__name__, **network.config.to_dict()}
    meta["preprocessing"] = preprocessing.to_dict()
    meta["weights_dtype"] = "float16" if half else "float32"
    meta["weights_sha256"] = weights_sha256(state)
    meta["parameters"] = int(sum(v.numel() for k, v in state.items() if v.is_floating_point()))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": FORMAT, "state_dict": state, "metadata": meta}, path)
    return meta


def default_model_path() -> Path:
    """Path of the model shipped in ``antema_scale/models/``."""
    return Path(str(resources.files("antema_scale") / "models" / DEFAULT_MODEL_NAME))


def read_model_file(path: str | Path) -> dict[str, Any]:
    """Read and check a model file (``weights_only``); returns its dict."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or unsafe files
        raise ModelFileError(f"cannot read model file {str(path)!r}: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"{str(path)!r} is not an antema-scale model file ({FORMAT})")
    state, meta = payload.get("state_dict"), payload.get("metadata")
    if not isinstance(state, dict) or not isinstance(meta, dict):
        raise ModelFileError(f"{str(path)!r} lacks state_dict or metadata")
    expected = meta.get("weights_sha256")
    actual = weights_sha256(state)
    if expected != actual:
        raise ModelFileError(
            f"weights of {str(path)!r} do not match their recorded sha256 "
            f"(recorded {expected}, computed {actual}): the file was altered or corrupted"
        )
    return payload


def load_model(
    path: str | Path | None = None, device: str | torch.device = "auto"
) -> SegmentationModel:
    """Load a segmentation model (``None``: the default model shipped with the package).

    Parameters
    ----------
    path : str or Path, optional
        Model file written by :func:`save_model` or ``antema-scale train``.
    device : str or torch.device
        ``auto`` (CUDA > MPS > CPU), ``cpu``, ``cuda`` or ``mps``.

    Returns
    -------
    SegmentationModel
        Network in eval mode (float32 weights) with its pre-processing and metadata.

    Raises
    ------
    ModelFileError
        Missing/unreadable file, foreign format, or weights that fail the sha256 check.
    """
    path = default_model_path() if path is None else path
    payload = read_model_file(path)
    meta = payload["metadata"]
    arch = {k: v for k, v in meta["architecture"].items() if k != "name"}
    try:
        network = build_network(arch)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{str(path)!r}: unknown architecture {arch!r} ({exc})") from exc
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    network.load_state_dict(state)
    network.eval()
    model = SegmentationModel(network, Preprocessing.from_dict(meta["preprocessing"]), meta)
    return model.to(device)


def export_model(
    source: str | Path,
    destination: str | Path,
    *,
    extra_metadata: dict[str, Any] | None = None,
    half: bool = True,
) -> dict[str, Any]:
    """Copy a model file (e.g. a training checkpoint) with added metadata, fp16 by default.

    The weights are re-hashed after the conversion; ``extra_metadata`` keys replace
    existing ones (e.g. test metrics, the evaluation command). Returns the new metadata.
    """
    model = load_model(source, device="cpu")
    meta = {**model.metadata, **(extra_metadata or {})}
    if Path(source).resolve() != Path(destination).resolve():
        meta["exported_from"] = Path(source).name
    return save_model(destination, model.network, model.preprocessing, meta, half=half)


def combine_models(
    sources: list[str | Path],
    destination: str | Path,
    *,
    extra_metadata: dict[str, Any] | None = None,
    half: bool = True,
) -> dict[str, Any]:
    """Write one model file holding an ensemble of the networks of several model files.

    The ensemble (:class:`~antema_scale.segment.network.NetworkEnsemble`) predicts the
    mean of its members' logits. The members must share their pre-processing (working
    pixel-size range, smoothing, clipping), since one prepared image feeds them all.

    Parameters
    ----------
    sources : list of str or Path
        Two or more model files (an ensemble file adds all of its members).
    destination : str or Path
        The new model file (fp16 weights by default, as :func:`export_model`).
    extra_metadata : dict, optional
        Added to the metadata (e.g. validation metrics, quality thresholds).
    half : bool
        Store the weights as float16.

    Returns
    -------
    dict
        The metadata written. ``members`` lists, per member, its source file, weights
        sha256, training command and data seen, so that the ensemble's provenance and its
        held-out splits stay on record.

    Raises
    ------
    ValueError
        Fewer than two networks, or members prepared differently.
    """
    models = [load_model(source, device="cpu") for source in sources]
    networks: list[DeepLabV3Plus] = []
    members: list[dict[str, Any]] = []
    for source, model in zip(sources, models, strict=True):
        if model.preprocessing != models[0].preprocessing:
            raise ValueError(
                f"cannot combine {str(sources[0])!r} and {str(source)!r}: their pre-processing "
                f"differs ({models[0].preprocessing.to_dict()} vs {model.preprocessing.to_dict()})"
            )
        record = {
            "source": Path(source).name,
            "weights_sha256": model.metadata.get("weights_sha256"),
            **{k: model.metadata[k] for k in ("training", "data_seen") if k in model.metadata},
        }
        if not isinstance(model.network, NetworkEnsemble):
            networks.append(model.network)
            members.append(record)
            continue
        inner = list(model.network.members)
        networks.extend(inner)  # type: ignore[arg-type]
        recorded = model.metadata.get("members") or []
        if len(recorded) != len(inner):  # e.g. an ensemble fine-tuned as a whole
            recorded = [{**record, "member": index} for index in range(len(inner))]
        members.extend(recorded)
    ensemble = NetworkEnsemble(networks)
    meta = {"members": members, **(extra_metadata or {})}
    return save_model(destination, ensemble, models[0].preprocessing, meta, half=half)


def training_records(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``training`` metadata of each network in a model file's metadata.

    One record for a single network, one per member for an ensemble (from its
    ``members`` metadata); records that are missing or not dicts are left out.
    """
    records = [member.get("training") for member in metadata.get("members") or []]
    if not records:
        records = [metadata.get("training")]
    return [record for record in records if isinstance(record, dict)]
