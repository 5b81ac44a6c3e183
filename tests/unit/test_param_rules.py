"""Rules that join parameters, or read a file a parameter names, are checked before any data is read (one
line naming the parameters, exit 2 and no run folder from the command line); fit keeps them for Python
users, from the same helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asdkit.data.manifest import Clip
from asdkit.detectors.base import ClipFeatures
from asdkit.detectors.ensemble import EnsembleDetector
from asdkit.detectors.params import validate_params
from asdkit.detectors.reconstruction.idnn import IdnnDetector
from asdkit.detectors.registry import get_detector_class
from asdkit.errors import AsdkitError, ModelError
from asdkit.features.config import FeatureConfig
from asdkit.models.encoders import ast as ast_encoder
from asdkit.models.encoders import base as encoders_base
from asdkit.models.encoders import beats
from tests.helpers.cli import asdkit_cli
from tests.helpers.trees import make_tree

BEATS_WHERE = f"expected {beats.EXPECTED}; the official files are published at {beats.PUBLISHED_AT}"
MIN_SCALED = "domains=min_scaled needs the knn scorer (it scales by leave-one-out scores)"
CPU_DEVICES = (
    "accelerator=auto (here: cpu): devices counts CPU processes (a number >= 1); -1 (all) and indices are "
    "for GPUs"
)


def _refused(model: str, params: dict[str, object]) -> str:
    with pytest.raises(AsdkitError) as caught:
        validate_params(model, params)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.fixture
def weights_file(tmp_path: Path) -> str:
    """A file there to be read where a BEATs checkpoint is named (checked, not loaded, before any work)."""
    path = tmp_path / "BEATs_iter3.pt"
    path.write_bytes(b"0")
    return str(path)


# -- each rule, its line ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("model", "params", "message"),
    [
        (
            "ensemble",
            {"members": ["knn", "mahalanobis"], "weights": [1]},
            "--param weights=[1]: ensemble: weights must be one non-negative number per member (2)",
        ),
        (
            "ensemble",
            {"weights": [1, 2]},
            "--param weights=[1, 2]: ensemble: weights must be one non-negative number per member "
            "(1, the default members)",
        ),
        (
            "ensemble",
            {"select": "evidence", "weights": [1, 1]},
            "--param weights=[1, 1]: ensemble: weights must be one non-negative number per member "
            "(5, the default candidates)",
        ),
        (
            "ensemble",
            {"members": ["knn", "knn"], "weights": [1, -1]},
            "--param weights=[1, -1]: ensemble: weights must be one non-negative number per member (2)",
        ),
        (
            "ensemble",
            {"members": ["knn", "mahalanobis"], "weights": [2, 1], "combine": "max"},
            "--param weights=[2, 1]: ensemble: combine=max takes no weights (None or equal ones)",
        ),
        (
            "ensemble",
            {"members": []},
            '--param members=[]: ensemble: no members; give members=[{"model": "knn"}, {"path": "runs/x"}, '
            "...]",
        ),
        (
            "ensemble",
            {"members": ["knn", {"path": "no/such/run"}]},
            "--param members[1]={'path': 'no/such/run'}: ensemble: no/such/run: no such model folder or run "
            "directory",
        ),
        (
            "ensemble",
            {"members": ["knn", {"path": "runs/x"}], "select": "evidence"},
            "--param select=evidence: ensemble: select=evidence judges detectors trained here, not saved "
            "models (members[1])",
        ),
        (
            "ensemble",
            {"members": [{"model": "vae", "params": {"preset": "1:0", "kl_weight": 0.5}}]},
            "--param members[0]: preset=1:0: vae: preset '1:0' sets kl_weight=0 but kl_weight=0.5 was "
            "given; drop one of them",
        ),
        (
            "vae",
            {"preset": "1:0", "kl_weight": 0.5},
            "--param preset=1:0: vae: preset '1:0' sets kl_weight=0 but kl_weight=0.5 was given; drop one "
            "of them",
        ),
        (
            "vae",
            {"preset": "0:1", "recon_weight": 1},
            "--param preset=0:1: vae: preset '0:1' sets recon_weight=0 but recon_weight=1 was given; drop "
            "one of them",
        ),
        (
            "vae",
            {"recon_weight": 0, "kl_weight": 0},
            "--param recon_weight=0: vae: recon_weight and kl_weight are both 0; nothing to learn",
        ),
        (
            "arcface",
            {"domains": "min_scaled", "scorer": "mahalanobis"},
            f"--param scorer=mahalanobis: arcface: {MIN_SCALED}, not mahalanobis",
        ),
        (
            "adacos",
            {"domains": "min_scaled", "scorer": "gmm"},
            f"--param scorer=gmm: adacos: {MIN_SCALED}, not gmm",
        ),
        (
            "knn",
            {"input": "beats"},
            f"--param input=beats: knn: no checkpoint given: {BEATS_WHERE} (give --param checkpoint=PATH)",
        ),
        (
            "patch_bank",
            {"input": "beats", "checkpoint": "no/such/BEATs.pt"},
            f"--param checkpoint=no/such/BEATs.pt: patch_bank: no/such/BEATs.pt: no such checkpoint file; "
            f"{BEATS_WHERE}",
        ),
        (
            "finetune",
            {},
            f"--param encoder=beats: finetune: no checkpoint given: {BEATS_WHERE} (give --param "
            "checkpoint=PATH)",
        ),
        (
            "finetune",
            {"encoder": "ast", "checkpoint": "no/such/folder"},
            f"--param checkpoint=no/such/folder: finetune: no/such/folder: no such AST model directory; "
            f"{ast_encoder.WHERE}",
        ),
        (
            "idnn",
            {"n_frames": 4},
            "--param n_frames=4: idnn: n_frames must be odd and at least 3 (a centre and context)",
        ),
        ("arcface", {"snippet_frames": 4}, "--param snippet_frames=4: arcface: snippet_frames must be >= 8"),
        (
            "resnet_section",
            {"init_from": "no/such/run"},
            "--param init_from=no/such/run: resnet_section: no/such/run: no such model folder or run "
            "directory",
        ),
        ("ae", {"devices": -1}, f"--param devices=-1: ae: {CPU_DEVICES}"),
        ("maf", {"devices": "-1"}, f"--param devices=-1: maf: {CPU_DEVICES}"),
        ("ae", {"devices": "0,1", "accelerator": "auto"}, f"--param devices=0,1: ae: {CPU_DEVICES}"),
        (
            "ae",
            {"devices": "0,1", "accelerator": "cpu"},
            "--param devices=0,1: ae: accelerator=cpu: devices counts CPU processes (a number >= 1); "
            "-1 (all) and indices are for GPUs",
        ),
        ("ae", {"devices": 0}, "--param devices=0: ae expects an integer >= 1 or -1 or text"),
        ("ae", {"devices": -2}, "--param devices=-2: ae expects an integer >= 1 or -1 or text"),
        ("ae", {"devices": "0"}, "--param devices=0: ae: a number of devices is >= 1 or -1 (all), got '0'"),
        (
            "ae",
            {"devices": "1,1"},
            "--param devices=1,1: ae: device indices are distinct numbers >= 0, got '1,1'",
        ),
    ],
)
def test_each_rule_is_one_line_naming_the_parameters(
    model: str, params: dict[str, object], message: str
) -> None:
    assert _refused(model, params) == message


@pytest.mark.parametrize(
    ("model", "params"),
    [
        ("ensemble", {"members": ["knn", "mahalanobis"], "weights": [2, 2], "combine": "max"}),
        ("ensemble", {"members": ["knn", "mahalanobis"], "weights": [3, 1]}),
        ("vae", {"preset": "1:1", "kl_weight": 1}),
        ("vae", {"recon_weight": 0, "kl_weight": 1}),
        ("arcface", {"domains": "min_scaled"}),
        ("adacos", {"domains": "min", "scorer": "mahalanobis"}),
        ("idnn", {"n_frames": 3}),
        ("arcface", {"snippet_frames": 8}),
        ("ae", {"devices": 2}),
        ("ae", {"devices": "2", "accelerator": "cpu"}),
    ],
)
def test_what_goes_together_passes(model: str, params: dict[str, object]) -> None:
    assert validate_params(model, params) == params


def test_a_checkpoint_that_is_there_passes_and_one_that_cannot_be_read_is_named(
    weights_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for model in ("knn", "patch_bank", "mahalanobis", "gmm"):
        assert validate_params(model, {"input": "beats", "checkpoint": weights_file})
    assert validate_params("finetune", {"checkpoint": weights_file})

    def unreadable(*args: object, **kwargs: object) -> object:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(encoders_base, "open", unreadable, raising=False)  # root reads any file
    assert _refused("knn", {"input": "beats", "checkpoint": weights_file}) == (
        f"--param checkpoint={weights_file}: knn: {weights_file}: cannot be read (Permission denied); "
        f"{BEATS_WHERE}"
    )


def test_an_ast_checkpoint_is_a_folder_with_its_config(tmp_path: Path) -> None:
    folder = tmp_path / "ast"
    folder.mkdir()
    assert _refused("knn", {"input": "ast", "checkpoint": str(folder)}) == (
        f"--param checkpoint={folder}: knn: {folder}: no such AST model directory; {ast_encoder.WHERE}"
    )
    (folder / "config.json").write_text("{}")
    assert validate_params("knn", {"input": "ast", "checkpoint": str(folder)})


def test_lora_where_it_cannot_be_added_is_named(weights_file: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from asdkit.models import encoder_classifier

    monkeypatch.setattr(encoder_classifier, "find_spec", lambda name: None)
    assert _refused("finetune", {"checkpoint": weights_file}) == (
        "--param tuning=lora: finetune: tuning=lora needs the peft package: pip install 'asdkit[finetune]'"
    )
    assert validate_params("finetune", {"checkpoint": weights_file, "tuning": "full"})
    monkeypatch.setattr(encoder_classifier, "find_spec", lambda name: object())
    monkeypatch.setattr(beats.Beats, "lora_targets", ())
    assert _refused("finetune", {"checkpoint": weights_file}) == (
        "--param tuning=lora: finetune: encoder 'beats' names no layers for LoRA; use tuning=full"
    )


def test_init_from_must_be_a_model_folder_or_a_run(tmp_path: Path) -> None:
    assert _refused("mobilenet_section", {"init_from": str(tmp_path)}) == (
        f"--param init_from={tmp_path}: mobilenet_section: {tmp_path}: neither a model folder (model.json) "
        "nor a run directory (models/*/)"
    )
    (tmp_path / "models" / "fan").mkdir(parents=True)
    (tmp_path / "models" / "fan" / "model.json").write_text("{}")
    assert validate_params("mobilenet_section", {"init_from": str(tmp_path)})


# -- devices as Lightning reads them ------------------------------------------------------------------------
def _lightning_refuses(accelerator: str, devices: object) -> bool:
    import lightning as L

    try:
        L.Trainer(
            accelerator=accelerator,
            devices=devices,  # type: ignore[arg-type]
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
    except Exception:
        return True
    return False


@pytest.mark.parametrize("devices", [1, 2, "2", -1, "-1", 0, "0", "0,1", "auto"])
def test_devices_on_the_cpu_are_refused_where_lightning_refuses_them(devices: object) -> None:
    """The integer -1 and the text "-1" mean the same (all devices), as they do to Lightning, which takes
    neither (nor device indices) for CPU processes."""
    try:
        validate_params("ae", {"accelerator": "cpu", "devices": devices})
        refused = False
    except AsdkitError:
        refused = True
    assert refused == _lightning_refuses("cpu", devices)


def test_more_gpus_than_the_machine_has_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lightning would refuse them at fit time, after the features were computed (a GPU machine with two)."""
    from lightning.pytorch.accelerators import CUDAAccelerator

    monkeypatch.setattr(CUDAAccelerator, "is_available", staticmethod(lambda: True))
    monkeypatch.setattr(CUDAAccelerator, "auto_device_count", staticmethod(lambda: 2))
    for accelerator in ("cuda", "gpu", "auto"):
        for devices in (1, 2, -1, "-1", "2", "0,1", "1,"):
            given = {"accelerator": accelerator, "devices": devices}
            assert validate_params("ae", given) == given
    assert _refused("ae", {"accelerator": "cuda", "devices": 4}) == (
        "--param devices=4: ae: accelerator=cuda: this machine has 2 cuda device(s), fewer than 4"
    )
    assert _refused("resnet_section", {"accelerator": "auto", "devices": "3"}) == (
        "--param devices=3: resnet_section: accelerator=auto (here: cuda): this machine has 2 cuda "
        "device(s), fewer than 3"
    )
    assert _refused("ae", {"accelerator": "gpu", "devices": "0,2"}) == (
        "--param devices=0,2: ae: accelerator=gpu (here: cuda): device index 2 is not here; this machine "
        "has 2 cuda device(s)"
    )


# -- fit keeps the rules, from the same helpers -------------------------------------------------------------
CONFIG = FeatureConfig(n_mels=16)


def _features(n: int) -> ClipFeatures:
    rng = np.random.default_rng(0)
    arrays = [rng.normal(-40, 1, size=(CONFIG.n_mels, 40)).astype(np.float32) for _ in range(n)]
    clips = [Clip(path=f"/data/m/{i}.wav", machine="m", section=f"0{i % 2}") for i in range(n)]
    return ClipFeatures(arrays, clips, CONFIG)


def test_fit_refuses_what_validation_refuses_in_the_same_words() -> None:
    with pytest.raises(ModelError) as caught:
        EnsembleDetector(members=["knn", "mahalanobis"], weights=[1]).fit(_features(12))
    assert str(caught.value) == "ensemble: weights must be one non-negative number per member (2), got [1]"
    with pytest.raises(AsdkitError) as caught:
        IdnnDetector(n_frames=4, epochs=1).fit(_features(12))
    assert str(caught.value) == "idnn: n_frames must be odd and at least 3 (a centre and context), got 4"
    with pytest.raises(ModelError) as caught:
        beats.Beats.from_checkpoint("no/such/BEATs.pt")
    assert str(caught.value) == f"no/such/BEATs.pt: no such checkpoint file; {BEATS_WHERE}"
    from asdkit.scoring.embedding import DomainBanks, make_scorer

    with pytest.raises(ModelError) as caught:
        DomainBanks(make_scorer("gmm"), "min_scaled")
    assert str(caught.value) == f"{MIN_SCALED}, not gmm"


def test_every_check_is_a_classmethod_merged_over_bases_and_mixins() -> None:
    """InputChoice (a mixin) and EmbeddingDetector both hold rules of knn; DeepDetector's reach every
    network."""
    names = [c.__func__.__qualname__ for c in get_detector_class("knn").parameter_checks()]  # type: ignore[attr-defined]
    assert names == ["Detector.check_params", "EmbeddingDetector.check_params", "InputChoice.check_params"]
    for model in ("ae", "vae", "arcface", "finetune", "resnet_section"):
        checks = [c.__func__.__qualname__ for c in get_detector_class(model).parameter_checks()]  # type: ignore[attr-defined]
        assert "DeepDetector.check_params" in checks


# -- the command line ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("command", "model", "params", "error"),
    [
        (
            "run",
            "ensemble",
            ['members=["knn", "mahalanobis"]', "weights=[1, 2, 3]"],
            "--param weights=[1, 2, 3]: ensemble: weights must be one non-negative number per member (2)",
        ),
        (
            "train",
            "knn",
            ["input=beats", "checkpoint=no/such/BEATs.pt"],
            f"--param checkpoint=no/such/BEATs.pt: knn: no/such/BEATs.pt: no such checkpoint file; "
            f"{BEATS_WHERE}",
        ),
        ("train", "ae", ["devices=-1", "epochs=1"], f"--param devices=-1: ae: {CPU_DEVICES}"),
    ],
)
def test_the_command_line_names_a_conflict_before_reading_any_data(
    tmp_path: Path, command: str, model: str, params: list[str], error: str
) -> None:
    """Exit 2 and one line; no run folder and no features (the cache stays empty): nothing was read."""
    tree = make_tree(tmp_path / "data", "dcase2022", machines=("fan",), n_train=4, n_test=1)
    out, cache = tmp_path / "run", tmp_path / "cache"
    args = ["--data", str(tree), "--out", str(out), "--model", model, "--no-track", "--cache-dir", str(cache)]
    for param in params:
        args += ["--param", param]
    result = asdkit_cli(command, *args)
    assert (result.returncode, result.stderr.strip()) == (2, f"error: {error}")
    assert not out.exists() and not cache.exists()


def test_the_same_command_with_parameters_that_go_together_computes_features(tmp_path: Path) -> None:
    """The control of the test above: without the conflict the run writes its folder and its features."""
    tree = make_tree(tmp_path / "data", "dcase2022", machines=("fan",), n_train=4, n_test=1)
    out, cache = tmp_path / "run", tmp_path / "cache"
    args = ["--data", str(tree), "--out", str(out), "--model", "ensemble", "--no-track"]
    args += [
        "--cache-dir",
        str(cache),
        "--param",
        'members=["knn", "mahalanobis"]',
        "--param",
        "weights=[1, 2]",
    ]
    result = asdkit_cli("run", *args)
    assert result.returncode == 0, result.stderr
    assert out.is_dir() and any(cache.rglob("*"))
