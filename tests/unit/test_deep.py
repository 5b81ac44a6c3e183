"""The deep-detector base: TrainerConfig settings are plain parameters, routed, validated and saved flat."""

from __future__ import annotations

import json

import pytest
import torch

from asdkit.api import make_detector
from asdkit.detectors.base import CONFIG_NAME, MODEL_FORMAT, WEIGHTS_NAME, Detector
from asdkit.detectors.deep import DEBUG_EPOCHS, DeepDetector, TrainerConfig
from asdkit.detectors.margin.family import AdaCosDetector, ArcFaceDetector
from asdkit.detectors.params import validate_params
from asdkit.detectors.reconstruction.autoencoder import AutoencoderDetector
from asdkit.detectors.registry import available_detectors, get_detector_class
from asdkit.errors import AsdkitError
from asdkit.features.config import FeatureConfig

NETWORKS = [n for n in available_detectors() if issubclass(get_detector_class(n), DeepDetector)]


def test_every_network_detector_has_every_trainer_setting_as_a_parameter():
    assert {"ae", "vae", "idnn", "conv_ae", "made", "maf", "density_ae", "arcface", "adacos"} <= set(NETWORKS)
    for name in NETWORKS:
        params = get_detector_class(name)().get_params()
        assert set(TrainerConfig.settings()) <= set(params), name
        assert "log_dir" not in params and "trainer" not in params


def test_trainer_settings_are_keyword_arguments_attributes_and_params():
    detector = AutoencoderDetector(epochs=3, learning_rate=0.01, hidden=16)
    assert detector.trainer == TrainerConfig(epochs=3, learning_rate=0.01)
    assert detector.epochs == 3 and detector.hidden == 16
    assert detector.get_params()["epochs"] == 3
    assert make_detector("ae", {"epochs": 3}).trainer.epochs == 3


def test_set_params_routes_trainer_settings_to_the_config_and_clones_round_trip():
    detector = AutoencoderDetector()
    detector.set_params(epochs=7, batch_size=16, n_frames=3)
    assert (detector.trainer.epochs, detector.trainer.batch_size, detector.n_frames) == (7, 16, 3)
    clone = type(detector)(**detector.get_params())
    assert clone.get_params() == detector.get_params()
    assert clone.trainer is not detector.trainer
    assert AutoencoderDetector().epochs == 100  # the class defaults are untouched
    with pytest.raises(ValueError, match="unknown parameter 'epoch'"):
        detector.set_params(epoch=3)
    with pytest.raises(
        TypeError, match=r"AutoencoderDetector\(\) got unexpected keyword argument\(s\) epoch"
    ):
        AutoencoderDetector(epoch=3)


def test_families_set_their_own_trainer_defaults():
    assert get_detector_class("resnet_section")().trainer == TrainerConfig(epochs=30, batch_size=64)
    assert get_detector_class("mobilenet_section")().trainer == TrainerConfig(epochs=20, batch_size=32)
    assert get_detector_class("conv_ae")().trainer == TrainerConfig(batch_size=64)
    assert ArcFaceDetector().trainer == TrainerConfig(epochs=20, batch_size=64)


def test_arcface_and_adacos_differ_only_by_their_heads():
    arcface, adacos = ArcFaceDetector().get_params(), AdaCosDetector().get_params()
    assert set(arcface) - set(adacos) == {"margin", "scale"}
    assert set(adacos) - set(arcface) == {"n_subclusters"}
    assert {k: v for k, v in arcface.items() if k in adacos} == {
        k: v for k, v in adacos.items() if k in arcface
    }


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"epochs": 0}, "--param epochs=0: ae expects an integer >= 1"),
        ({"epochs": 1.5}, "--param epochs=1.5: ae expects an integer >= 1"),
        ({"learning_rate": -1}, "--param learning_rate=-1: ae expects a number > 0"),
        ({"progress": "yes"}, "--param progress=yes: ae expects true or false"),
        ({"epoch": 3}, "--param epoch: detector 'ae' has no such parameter; it takes n_frames"),
    ],
)
def test_trainer_settings_are_validated_with_one_line_errors(params, needle):
    with pytest.raises(AsdkitError) as info:
        validate_params("ae", params)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_validation_keeps_good_trainer_settings_and_makes_numbers_text_where_text_is_wanted():
    checked = validate_params("resnet_section", {"epochs": 2, "devices": "auto", "precision": 16})
    assert checked == {"epochs": 2, "devices": "auto", "precision": "16"}


def test_debug_parameters_are_declared_by_the_class_and_user_params_win():
    assert AutoencoderDetector.debug_params() == {"epochs": DEBUG_EPOCHS}
    resnet = make_detector("resnet_section", debug=True)
    assert (resnet.epochs, resnet.base_channels) == (DEBUG_EPOCHS, 8)  # type: ignore[attr-defined]
    assert make_detector("mobilenet_section", {"epochs": 5}, debug=True).get_params()["width"] == 0.25
    assert make_detector("mobilenet_section", {"epochs": 5}, debug=True).get_params()["epochs"] == 5
    assert get_detector_class("knn").debug_params() == {}


def test_a_format_1_model_with_flat_trainer_params_still_loads(tmp_path):
    """model.json of format 1 as written before TrainerConfig (no ``precision``); the params stay flat."""
    params = {
        "n_frames": 5,
        "hidden": 16,
        "bottleneck": 4,
        "n_hidden": 1,
        "standardise": False,
        "score": "mse",
        "epochs": 3,
        "batch_size": 512,
        "learning_rate": 0.001,
        "validation_fraction": 0.1,
        "seed": 4,
        "accelerator": "cpu",
        "devices": 1,
        "strategy": "auto",
        "progress": False,
    }
    features = FeatureConfig(n_mels=16)
    built = AutoencoderDetector(**params)
    built._build_network(features.n_mels)
    folder = tmp_path / "model"
    folder.mkdir()
    torch.save(built.network_.state_dict(), folder / WEIGHTS_NAME)
    config = {
        "format": MODEL_FORMAT,
        "format_version": 1,
        "detector": "ae",
        "params": params,
        "features": features.to_dict(),
        "threshold": 1.5,
        "state": {"n_mels_in": 16},
    }
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    loaded = Detector.load(folder)
    assert isinstance(loaded, AutoencoderDetector)
    assert loaded.trainer == TrainerConfig(epochs=3, seed=4, accelerator="cpu")
    assert loaded.get_params() == {**params, "precision": "32-true"}
    assert loaded.threshold_ == 1.5
