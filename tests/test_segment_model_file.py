"""Model files: weights_only loading, metadata, sha256 check, fp16 export, devices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from antema_scale.segment.model_file import (
    FORMAT,
    ModelFileError,
    export_model,
    load_model,
    resolve_device,
    save_model,
    weights_sha256,
)
from antema_scale.segment.network import NetworkConfig, build_network
from antema_scale.segment.preprocess import Preprocessing


@pytest.fixture()
def model_path(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    net = build_network(NetworkConfig(base_width=4))
    path = tmp_path / "m.pt"
    save_model(path, net, Preprocessing((0.1, 0.4), 1.5), {"data_seen": {"emps": 3}})
    return path


def test_file_loads_with_weights_only_and_has_metadata(model_path: Path) -> None:
    payload = torch.load(model_path, weights_only=True)
    assert payload["format"] == FORMAT
    meta = payload["metadata"]
    assert meta["architecture"]["backbone"] == "resnet18"
    assert meta["architecture"]["base_width"] == 4
    assert meta["preprocessing"]["pixel_size_range_nm"] == [0.1, 0.4]
    assert meta["data_seen"] == {"emps": 3}
    assert meta["weights_sha256"] == weights_sha256(payload["state_dict"])
    model = load_model(model_path, device="cpu")
    assert not model.network.training
    assert model.preprocessing == Preprocessing((0.1, 0.4), 1.5)


def test_loaded_network_reproduces_saved_one(model_path: Path) -> None:
    torch.manual_seed(0)
    original = build_network(NetworkConfig(base_width=4)).eval()
    loaded = load_model(model_path, device="cpu").network
    x = torch.randn(1, 1, 48, 48)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), original(x))


def test_a_network_with_detail_refinement_round_trips_through_fp16_export(tmp_path: Path) -> None:
    torch.manual_seed(1)
    net = build_network(NetworkConfig(base_width=4, detail_channels=4)).eval()
    assert net.detail is not None
    torch.nn.init.normal_(net.detail.delta.weight)  # not the zero-initialised no-op
    path, half = tmp_path / "detail.pt", tmp_path / "detail16.pt"
    save_model(path, net, Preprocessing((0.1, 0.4), 1.5), {})
    export_model(path, half)
    assert torch.load(half, weights_only=True)["metadata"]["architecture"]["detail_channels"] == 4
    loaded, halved = load_model(path, "cpu"), load_model(half, "cpu")
    assert loaded.network.config.detail_channels == halved.network.config.detail_channels == 4
    x = torch.randn(1, 1, 40, 40)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.network(x), net(x))
        assert float((halved.network(x) - net(x)).abs().max()) < 0.05


def test_altered_weights_fail_the_sha256_check(model_path: Path, tmp_path: Path) -> None:
    payload = torch.load(model_path, weights_only=True)
    name = next(k for k, v in payload["state_dict"].items() if v.is_floating_point())
    payload["state_dict"][name] = payload["state_dict"][name] + 1.0
    bad = tmp_path / "bad.pt"
    torch.save(payload, bad)
    with pytest.raises(ModelFileError, match="do not match their recorded sha256"):
        load_model(bad)


def test_foreign_and_missing_files(tmp_path: Path) -> None:
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ModelFileError, match="not an antema-scale model file"):
        load_model(other)
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match="cannot read model file"):
        load_model(junk)


def test_fp16_export_is_smaller_and_close(model_path: Path, tmp_path: Path) -> None:
    half = tmp_path / "half.pt"
    meta = export_model(model_path, half, extra_metadata={"test_metrics": {"iou": 0.5}})
    assert meta["weights_dtype"] == "float16" and meta["test_metrics"] == {"iou": 0.5}
    assert half.stat().st_size < 0.7 * model_path.stat().st_size
    a, b = load_model(model_path, "cpu").network, load_model(half, "cpu").network
    x = torch.randn(1, 1, 32, 32)
    with torch.inference_mode():
        assert np.abs((a(x) - b(x)).numpy()).max() < 0.05


def test_device_resolution() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
