"""Ensembles of networks: mean logits, model files that hold them, inference, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from antema_scale.segment import predict
from antema_scale.segment.inference_network import inference_network
from antema_scale.segment.model_file import (
    ModelFileError,
    combine_models,
    load_model,
    save_model,
)
from antema_scale.segment.network import (
    EnsembleConfig,
    NetworkConfig,
    NetworkEnsemble,
    build_network,
)
from antema_scale.segment.preprocess import Preprocessing
from antema_scale.segment.train import initialise_from

SMALL = NetworkConfig(base_width=4, aspp_rates=(2, 4))
PREPROCESSING = Preprocessing((0.1, 0.4), 1.0)


def _member(seed: int, config: NetworkConfig = SMALL) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = build_network(config).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, so folding is exercised
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    return net


def _model_file(path: Path, seed: int, training: str, preprocessing=PREPROCESSING) -> Path:
    save_model(path, _member(seed), preprocessing, {"training": {"seed": training}})
    return path


def test_ensemble_output_is_the_mean_of_its_members_logits() -> None:
    members = [_member(1), _member(2), _member(3, NetworkConfig(base_width=8))]
    ensemble = NetworkEnsemble(members).eval()
    x = torch.randn(2, 1, 40, 56)
    with torch.inference_mode():
        expected = sum(member(x) for member in members) / 3
        out = ensemble(x)
        first = members[0](x)
    assert out.shape == (2, 1, 40, 56)
    torch.testing.assert_close(out, expected)
    assert float((out - first).abs().max()) > 1e-3  # not just one member


def test_ensemble_config_round_trips_and_builds_an_ensemble() -> None:
    config = EnsembleConfig((SMALL, NetworkConfig(base_width=8)))
    rebuilt = build_network(config.to_dict())
    assert isinstance(rebuilt, NetworkEnsemble)
    assert rebuilt.config == config
    assert [m.config.base_width for m in rebuilt.members] == [4, 8]


def test_ensemble_refuses_one_member_and_mismatched_channels() -> None:
    with pytest.raises(ValueError, match="at least two networks, got 1"):
        NetworkEnsemble([_member(1)])
    with pytest.raises(ValueError, match="same input and output channels"):
        NetworkEnsemble([_member(1), build_network(NetworkConfig(base_width=4, num_classes=2))])


def test_combined_model_file_loads_and_predicts_as_the_mean(tmp_path: Path) -> None:
    a = _model_file(tmp_path / "a.pt", 1, "one")
    b = _model_file(tmp_path / "b.pt", 2, "two")
    meta = combine_models([a, b], tmp_path / "ab.pt", half=False, extra_metadata={"note": "x"})
    assert meta["architecture"]["name"] == "NetworkEnsemble"
    assert len(meta["architecture"]["members"]) == 2
    assert [m["source"] for m in meta["members"]] == ["a.pt", "b.pt"]
    assert [m["training"]["seed"] for m in meta["members"]] == ["one", "two"]
    assert meta["note"] == "x"
    payload = torch.load(tmp_path / "ab.pt", weights_only=True)
    assert payload["metadata"]["weights_sha256"] == meta["weights_sha256"]
    loaded = load_model(tmp_path / "ab.pt", device="cpu")
    assert isinstance(loaded.network, NetworkEnsemble)
    assert loaded.preprocessing == PREPROCESSING
    x = torch.randn(1, 1, 48, 48)
    with torch.inference_mode():
        expected = (
            load_model(a, device="cpu").network(x) + load_model(b, device="cpu").network(x)
        ) / 2
        torch.testing.assert_close(loaded.network(x), expected)
        # the folded, channels-last inference copy gives the same logits
        torch.testing.assert_close(
            inference_network(loaded.network)(x), expected, atol=1e-4, rtol=1e-4
        )
    # an ensemble file adds all its members
    c = _model_file(tmp_path / "c.pt", 3, "three")
    meta3 = combine_models([tmp_path / "ab.pt", c], tmp_path / "abc.pt")
    assert [m["source"] for m in meta3["members"]] == ["a.pt", "b.pt", "c.pt"]
    assert len(load_model(tmp_path / "abc.pt", device="cpu").network.members) == 3


def test_ensemble_model_predicts_masks_through_the_public_api(tmp_path: Path) -> None:
    a = _model_file(tmp_path / "a.pt", 1, "one")
    b = _model_file(tmp_path / "b.pt", 2, "two")
    combine_models([a, b], tmp_path / "ab.pt")
    model = load_model(tmp_path / "ab.pt", device="cpu")
    image = np.random.default_rng(0).normal(size=(70, 90)).astype(np.float32)
    (prediction,) = predict(model, [image], [0.2], flips=2, tile=64, overlap=16)
    assert prediction.mask.shape == (70, 90)
    assert prediction.probability.dtype == np.float32
    assert np.isfinite(prediction.probability).all()


def test_combine_refuses_members_prepared_differently(tmp_path: Path) -> None:
    a = _model_file(tmp_path / "a.pt", 1, "one")
    b = _model_file(tmp_path / "b.pt", 2, "two", Preprocessing((0.2, 0.8), 1.0))
    with pytest.raises(ValueError, match="pre-processing differs"):
        combine_models([a, b], tmp_path / "ab.pt")
    assert not (tmp_path / "ab.pt").exists()
    with pytest.raises(ValueError, match="at least two networks"):
        combine_models([a], tmp_path / "a_only.pt")


def test_unknown_architecture_is_a_clear_model_file_error(tmp_path: Path) -> None:
    path = _model_file(tmp_path / "a.pt", 1, "one")
    payload = torch.load(path, weights_only=True)
    payload["metadata"]["architecture"] = {"name": "Mystery", "layers": 7}
    torch.save(payload, tmp_path / "mystery.pt")
    with pytest.raises(ModelFileError, match="unknown architecture"):
        load_model(tmp_path / "mystery.pt")


def test_an_ensemble_initialises_only_an_ensemble_of_the_same_members(tmp_path: Path) -> None:
    a = _model_file(tmp_path / "a.pt", 1, "one")
    b = _model_file(tmp_path / "b.pt", 2, "two")
    combine_models([a, b], tmp_path / "ab.pt")
    single_from_ensemble = "a single network cannot start from an ensemble or the reverse"
    with pytest.raises(ValueError, match=single_from_ensemble):
        initialise_from(build_network(SMALL), str(tmp_path / "ab.pt"), PREPROCESSING)
    with pytest.raises(ValueError, match="an ensemble fine-tunes only as the same ensemble"):
        initialise_from(
            NetworkEnsemble([build_network(SMALL) for _ in range(2)]), str(a), PREPROCESSING
        )
    three = NetworkEnsemble([build_network(SMALL) for _ in range(3)])
    with pytest.raises(ValueError, match="as many members"):
        initialise_from(three, str(tmp_path / "ab.pt"), PREPROCESSING)
    two = NetworkEnsemble([build_network(SMALL) for _ in range(2)])
    info = initialise_from(two, str(tmp_path / "ab.pt"), PREPROCESSING)
    assert info["path"] == str(tmp_path / "ab.pt")
    x = torch.randn(1, 1, 32, 32)
    with torch.inference_mode():
        expected = load_model(tmp_path / "ab.pt", device="cpu").network(x)
        torch.testing.assert_close(two.eval()(x), expected)


def test_ensemble_command_writes_a_file_and_reports_bad_input(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from antema_scale.cli import app

    a = _model_file(tmp_path / "a.pt", 1, "one")
    b = _model_file(tmp_path / "b.pt", 2, "two")
    out = tmp_path / "ab.pt"
    result = CliRunner().invoke(app, ["ensemble", str(a), str(b), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "ensemble of 2 networks" in result.output
    meta = torch.load(out, weights_only=True)["metadata"]
    assert meta["weights_dtype"] == "float16"
    assert meta["ensemble_command"].startswith("antema-scale")
    one = CliRunner().invoke(app, ["ensemble", str(a), "-o", str(tmp_path / "x.pt")])
    assert one.exit_code == 2 and "at least two model files" in one.output
    missing = CliRunner().invoke(app, ["ensemble", str(a), "nope.pt", "-o", str(tmp_path / "y.pt")])
    assert missing.exit_code == 1 and "does not exist" in missing.output
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "y.pt").exists()


def test_training_records_and_summaries_cover_single_networks_and_ensembles() -> None:
    from antema_scale.benchmark.report import _epochs_text, architecture_summary
    from antema_scale.segment.model_file import training_records

    single = {"training": {"split_seed": 0, "epochs_done": 30}}
    ensemble = {"members": [{"training": {"split_seed": 0}}, {"training": {"split_seed": 0}}]}
    assert training_records(single) == [{"split_seed": 0, "epochs_done": 30}]
    assert training_records(ensemble) == [{"split_seed": 0}, {"split_seed": 0}]
    assert training_records({}) == []
    config = EnsembleConfig((SMALL, SMALL))
    assert architecture_summary({"name": "DeepLabV3Plus", **SMALL.to_dict()}) == "w4"
    assert architecture_summary({"name": "NetworkEnsemble", **config.to_dict()}) == "2 x w4"
    mixed = EnsembleConfig((SMALL, NetworkConfig(base_width=8))).to_dict()
    assert architecture_summary(mixed) == "w4 + w8"
    assert architecture_summary(None) == "?"
    assert _epochs_text([30, None]) == "30 + ?" and _epochs_text(12) == "12"


def test_benchmark_refuses_an_ensemble_trained_on_different_splits() -> None:
    from antema_scale.benchmark.runner import _model_split_seed
    from antema_scale.segment.model_file import SegmentationModel

    model = SegmentationModel(
        NetworkEnsemble([_member(1), _member(2)]),
        PREPROCESSING,
        {"members": [{"training": {"split_seed": 0}}, {"training": {"split_seed": 3}}]},
    )
    with pytest.raises(ValueError, match=r"different splits \(split seeds \[0, 3\]\)"):
        _model_split_seed(model)
    model.metadata["members"][1]["training"]["split_seed"] = 0
    assert _model_split_seed(model) == 0


def test_combining_an_ensemble_without_member_records_keeps_one_record_per_network(
    tmp_path: Path,
) -> None:
    # an ensemble fine-tuned as a whole carries one top-level training record, no 'members'
    joint = NetworkEnsemble([_member(1), _member(2)])
    save_model(tmp_path / "joint.pt", joint, PREPROCESSING, {"training": {"seed": "joint"}})
    c = _model_file(tmp_path / "c.pt", 3, "three")
    meta = combine_models([tmp_path / "joint.pt", c], tmp_path / "all.pt")
    assert len(meta["members"]) == len(load_model(tmp_path / "all.pt").network.members) == 3
    assert [m.get("member") for m in meta["members"]] == [0, 1, None]
    assert [m["training"]["seed"] for m in meta["members"]] == ["joint", "joint", "three"]
