"""Text parameters with a fixed set of words (or a grammar) and numbers with a range are checked before any
work, for every registered detector; the trainer's words are the installed Lightning's."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from asdkit.data.manifest import Clip
from asdkit.detectors.base import ClipFeatures, Detector
from asdkit.detectors.deep import DeepDetector
from asdkit.detectors.params import RANGES, RegistryWords, validate_params
from asdkit.detectors.proxy import PROXY_MODES
from asdkit.detectors.registry import available_detectors, create_detector, get_detector_class
from asdkit.errors import AsdkitError
from asdkit.features.config import FeatureConfig
from tests.helpers.checkpoints import readable_checkpoints, with_checkpoint
from tests.helpers.cli import asdkit_cli
from tests.helpers.trees import make_tree

#: Text parameters whose values are not a set of words: paths to the user's files.
OPEN_TEXT = {"checkpoint", "init_from"}
#: The accelerators of this machine (no TPU package in the test environment).
USABLE_HERE = {"auto", "cpu"} | ({"gpu", "cuda"} if torch.cuda.is_available() else set())
USABLE_HERE |= {"gpu", "mps"} if torch.backends.mps.is_available() else set()
#: Where Lightning itself refuses a name it does not know (at fit time, after the data was read).
LIGHTNING_REFUSAL = re.compile(r"invalid (accelerator|strategy) name|Precision .* is invalid")


def _declared(name: str) -> list[tuple[str, Sequence[str], object]]:
    """(parameter, its words, its default) for each declared choice the detector takes as a parameter."""
    cls = get_detector_class(name)
    parameters = cls.parameters()
    return [
        (key, words, parameters[key].default)
        for key, words in cls.parameter_choices().items()
        if key in parameters
    ]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return readable_checkpoints(tmp_path_factory.mktemp("checkpoints"))


CASES = [
    (name, key, words, default) for name in available_detectors() for key, words, default in _declared(name)
]


def test_the_detectors_that_say_so_declare_their_words() -> None:
    declared = {(name, key) for name, key, _, _ in CASES}
    for expected in [
        ("ensemble", "combine"),
        ("ensemble", "normalise"),
        ("patch_bank", "aggregate"),
        ("mahalanobis", "pooling"),
        ("ae", "score"),
        ("arcface", "ensemble_mode"),
        ("finetune", "head"),
        ("made", "proxy_outliers"),
        ("maf", "proxy_outliers"),
        ("density_ae", "proxy_outliers"),
        ("patch_bank", "domains"),
        ("vae", "preset"),
        ("knn", "input"),
        ("patch_bank", "input"),
        ("finetune", "encoder"),
        ("ae", "accelerator"),
        ("resnet_section", "strategy"),
        ("finetune", "precision"),
    ]:
        assert expected in declared


def _members(annotation: object) -> tuple[object, ...]:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return typing.get_args(annotation)
    return (annotation,)


def test_every_text_parameter_has_its_words_or_grammar_and_every_number_its_range() -> None:
    """A new parameter is caught here until it says what it takes (the user's file paths excepted)."""
    unchecked = []
    for name in available_detectors():
        cls = get_detector_class(name)
        known = set(cls.parameter_choices()) | set(cls.parameter_parsers())
        for key, p in cls.parameters().items():
            members = _members(p.annotation)
            if str in members and key not in known and key not in OPEN_TEXT:
                unchecked.append(f"{name}.{key} (text)")
            if {int, float} & set(members) and key not in RANGES:
                unchecked.append(f"{name}.{key} (number)")
    assert unchecked == []


def test_every_declared_key_is_a_parameter_somewhere() -> None:
    """A misspelt key in ``choices`` would check nothing: each is a parameter of a detector declaring it."""
    for name in available_detectors():
        cls = get_detector_class(name)
        for klass in cls.__mro__:
            for key in [*klass.__dict__.get("choices", {}), *klass.__dict__.get("parsers", {})]:
                holders = [n for n in available_detectors() if klass in get_detector_class(n).__mro__]
                assert any(key in get_detector_class(n).parameters() for n in holders), (klass, key)


@pytest.mark.parametrize(("name", "key", "words", "default"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_default_and_every_word_pass_and_others_fail_in_one_line(
    name: str, key: str, words: Sequence[str], default: object, checkpoints: dict[str, str]
) -> None:
    assert default is None or default in words  # None: not set (vae's preset)
    for word in words:
        if key == "accelerator" and word not in USABLE_HERE:
            continue  # a device this machine lacks: test_an_accelerator_this_machine_lacks_is_named
        given = with_checkpoint(name, {key: word}, checkpoints)
        assert validate_params(name, given) == given
    with pytest.raises(AsdkitError) as caught:
        validate_params(name, {key: "no-such-word"})
    message = str(caught.value)
    assert message == f"--param {key}=no-such-word: {name} expects one of {', '.join(words)}"


# -- fit takes every declared word -------------------------------------------------------------------------
CONFIG = FeatureConfig(n_mels=16)


def _features(n: int, seed: int, machine: str = "m") -> ClipFeatures:
    """Two sections, a few target clips in each: what every bank layout (domains) needs."""
    rng = np.random.default_rng(seed)
    profile = np.linspace(-20, -60, CONFIG.n_mels)[:, None]
    arrays, clips = [], []
    for i in range(n):
        x = profile + rng.normal(0, 1.0, size=(CONFIG.n_mels, 40))
        x[2 + 3 * (i % 2)] += 8.0
        arrays.append(x.astype(np.float32))
        domain = "target" if i % 6 in (4, 5) else "source"
        clips.append(
            Clip(path=f"/data/{machine}/{i}.wav", machine=machine, section=f"0{i % 2}", domain=domain)
        )
    return ClipFeatures(arrays, clips, CONFIG)


#: every fixed word of the detectors fitted in seconds, and the density family's proxy modes (read by
#: its base: one detector of the family stands for the three)
FIT_CASES = [
    (name, key, word)
    for name, key, words, _ in CASES
    if isinstance(words, tuple) and not issubclass(get_detector_class(name), DeepDetector)
    for word in words
] + [("made", "proxy_outliers", mode) for mode in PROXY_MODES]
QUICK = {"epochs": 1, "batch_size": 256, "accelerator": "cpu", "hidden": 16, "n_hidden": 1, "seed": 0}


@pytest.mark.parametrize(("name", "key", "word"), FIT_CASES, ids=[f"{n}-{k}-{w}" for n, k, w in FIT_CASES])
def test_fit_takes_every_declared_word(name: str, key: str, word: str) -> None:
    known = get_detector_class(name).parameters()
    params = {k: v for k, v in QUICK.items() if k in known} | {key: word}
    detector: Detector = create_detector(name, **validate_params(name, params))  # type: ignore[assignment]
    X = _features(24, 0)
    if "machines" in detector.tags().proxies:
        X = ClipFeatures(X.arrays, X.clips, CONFIG, proxy=_features(12, 1, machine="other"))
    detector.fit(X)
    assert np.all(np.isfinite(detector.anomaly_score(_features(6, 2))))


# -- grammars and ranges ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("knn", {"stats": "pooled+delta"}, None),
        ("mahalanobis", {"quantiles": 0.5}, None),
        ("gmm", {"layers": "4:0.2,12:0.8"}, None),
        ("ae", {"devices": "2"}, None),  # indices ("0,1") name GPUs: test_param_rules
        (
            "knn",
            {"stats": "pooled+spectral"},
            "--param stats=pooled+spectral: knn: groups joined by '+' among pooled, delta, envelope, tonal "
            "(e.g. pooled+delta), got 'pooled+spectral'",
        ),
        ("kmeans", {"quantiles": 2}, "--param quantiles=2: kmeans: each must be between 0 and 1, got '2'"),
        (
            "patch_bank",
            {"layers": "top"},
            "--param layers=top: patch_bank: expected all, last, layer numbers such as 4,8,12 or weighted "
            "4:0.2,12:0.8, got 'top'",
        ),
        (
            "maf",
            {"devices": "two"},
            "--param devices=two: maf: expected auto, a number of devices or device indices such as 0,1, "
            "got 'two'",
        ),
        ("knn", {"k": 0}, "--param k=0: knn expects an integer >= 1"),
        ("ae", {"epochs": -1}, "--param epochs=-1: ae expects an integer >= 1"),
        ("ae", {"batch_size": 0}, "--param batch_size=0: ae expects an integer >= 1"),
        ("arcface", {"n_models": 0}, "--param n_models=0: arcface expects an integer >= 1"),
        ("adacos", {"split_seed": -1}, "--param split_seed=-1: adacos expects an integer >= 0 or null"),
        ("kmeans", {"n_centres": 0}, "--param n_centres=0: kmeans expects an integer >= 1"),
        ("knn", {"oversample": -1}, "--param oversample=-1: knn expects an integer >= 0"),
        ("ensemble", {"evidence_folds": 1}, "--param evidence_folds=1: ensemble expects an integer >= 2"),
        ("ensemble", {"evidence_clips": 0}, "--param evidence_clips=0: ensemble expects an integer >= 1"),
        ("patch_bank", {"bank_size": 0}, "--param bank_size=0: patch_bank expects an integer >= 1"),
        ("patch_bank", {"fraction": 0}, "--param fraction=0: patch_bank expects a number in (0, 1]"),
        ("finetune", {"layer_decay": 1.5}, "--param layer_decay=1.5: finetune expects a number in (0, 1]"),
        ("finetune", {"lora_rank": 0}, "--param lora_rank=0: finetune expects an integer >= 1"),
        ("finetune", {"lora_alpha": 0}, "--param lora_alpha=0: finetune expects a number > 0"),
        ("finetune", {"segment_seconds": 0}, "--param segment_seconds=0: finetune expects a number > 0"),
        (
            "ensemble",
            {"members": ["knn", {"model": "knn", "params": {"metric": "manhattan"}}]},
            "--param members[1]: metric=manhattan: knn expects one of cosine, euclidean",
        ),
        (
            "ensemble",
            {"members": [{"model": "ae", "params": {"epochs": 0}}]},
            "--param members[0]: epochs=0: ae expects an integer >= 1",
        ),
    ],
)
def test_grammars_and_ranges_are_checked_in_one_line(
    name: str, params: dict[str, object], message: str | None
) -> None:
    if message is None:
        validate_params(name, params)
        return
    with pytest.raises(AsdkitError) as caught:
        validate_params(name, params)
    assert str(caught.value) == message


@pytest.mark.parametrize("name", available_detectors())
def test_every_default_is_within_its_words_grammar_and_range(name: str, checkpoints: dict[str, str]) -> None:
    cls = get_detector_class(name)
    defaults = {k: p.default for k, p in cls.parameters().items() if p.default is not inspect.Parameter.empty}
    given = with_checkpoint(name, defaults, checkpoints)
    assert validate_params(name, given) == given
    validate_params(name, with_checkpoint(name, cls.debug_params(), checkpoints))


# -- the trainer's words: the installed Lightning's ---------------------------------------------------------
def _lightning_refuses(key: str, word: str) -> bool:
    """Whether Lightning's Trainer refuses ``word`` as a name (not: the name is fine but this machine lacks
    the GPU, the TPU or the package it needs)."""
    import lightning as L

    try:
        L.Trainer(
            **{key: word}, devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False
        )
    except Exception as exc:  # a missing GPU or package raises all sorts
        return bool(LIGHTNING_REFUSAL.search(str(exc)))
    return False


@pytest.mark.parametrize("key", ["accelerator", "strategy", "precision"])
def test_the_trainer_words_are_those_the_installed_lightning_takes(key: str) -> None:
    words = DeepDetector.parameter_choices()[key]
    assert isinstance(words, RegistryWords)
    assert [w for w in words if _lightning_refuses(key, w)] == []
    assert _lightning_refuses(key, "no-such-word")
    assert {"accelerator": "cpu", "strategy": "ddp", "precision": "16-mixed"}[key] in words


def test_an_accelerator_this_machine_lacks_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lightning would refuse it after the features were computed (exit 1); now one line before."""
    from lightning.pytorch.accelerators import CUDAAccelerator, MPSAccelerator

    monkeypatch.setattr(CUDAAccelerator, "is_available", staticmethod(lambda: False))
    monkeypatch.setattr(MPSAccelerator, "is_available", staticmethod(lambda: False))
    for word in ("gpu", "cuda", "tpu"):
        with pytest.raises(AsdkitError) as caught:
            validate_params("ae", {"accelerator": word})
        assert (
            str(caught.value)
            == f"--param accelerator={word}: ae: this machine has no {word} device, only cpu (or auto)"
        )
    monkeypatch.setattr(CUDAAccelerator, "is_available", staticmethod(lambda: True))
    for word in ("gpu", "cuda", "cpu", "auto"):
        assert validate_params("made", {"accelerator": word}) == {"accelerator": word}


def test_the_installed_lightnings_registry_gives_the_strategies() -> None:
    from lightning.pytorch.strategies import StrategyRegistry

    expected = ", ".join(["auto", *StrategyRegistry.available_strategies()])
    with pytest.raises(AsdkitError) as caught:
        validate_params("resnet_section", {"strategy": "dpp"})
    assert str(caught.value) == f"--param strategy=dpp: resnet_section expects one of {expected}"
    assert validate_params("ae", {"precision": 16, "accelerator": "cpu"}) == {
        "precision": "16",
        "accelerator": "cpu",
    }


def test_lightning_is_imported_only_to_check_a_trainer_word() -> None:
    """Other parameters (and the scoring path) are checked without importing Lightning."""
    code = (
        "import sys\n"
        "from asdkit.detectors.params import validate_params\n"
        "validate_params('ae', {'epochs': 2, 'score': 'mse', 'devices': 'auto'})\n"
        "validate_params('knn', {'input': 'logmel', 'stats': 'pooled+delta'})\n"
        "assert not [m for m in sys.modules if m.startswith(('lightning', 'pytorch_lightning'))]\n"
        "validate_params('ae', {'strategy': 'ddp'})\n"
        "assert 'lightning.pytorch' in sys.modules\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


# -- the command line ---------------------------------------------------------------------------------------
def _lightning_words(key: str) -> str:
    """The installed Lightning's own words (its registries, its Trainer's precision type)."""
    from lightning.fabric.connector import _PRECISION_INPUT_STR, _PRECISION_INPUT_STR_ALIAS
    from lightning.pytorch.strategies import StrategyRegistry

    if key == "strategy":
        return ", ".join(["auto", *StrategyRegistry.available_strategies()])
    return ", ".join([*typing.get_args(_PRECISION_INPUT_STR), *typing.get_args(_PRECISION_INPUT_STR_ALIAS)])


@pytest.mark.parametrize(
    ("command", "model", "param", "error"),
    [
        ("run", "ensemble", "combine=vote", "--param combine=vote: ensemble expects one of mean, max"),
        ("run", "ae", "strategy=dpp", "--param strategy=dpp: ae expects one of {strategy}"),
        (
            "train",
            "made",
            "proxy_outliers=others",
            "--param proxy_outliers=others: made expects one of none, other_sections, "
            "other_sections_and_machines, other_machines",
        ),
        ("train", "kmeans", "n_centres=0", "--param n_centres=0: kmeans expects an integer >= 1"),
        pytest.param(
            "train",
            "ae",
            "accelerator=cuda",
            "--param accelerator=cuda: ae: this machine has no cuda device, only cpu (or auto)",
            marks=pytest.mark.skipif(bool(USABLE_HERE - {"auto", "cpu"}), reason="a machine with a GPU"),
        ),
        (
            "run",
            "ensemble",
            'members=[{"model": "ae", "params": {"precision": "17"}}]',
            "--param members[0]: precision=17: ae expects one of {precision}",
        ),
    ],
)
def test_the_command_line_names_a_wrong_word_before_any_work(
    tmp_path: Path, command: str, model: str, param: str, error: str
) -> None:
    """It used to fail once per machine type at fit time, after the features were computed; now one line,
    exit 2, and no run folder: the data (a real tree here) was not read."""
    error = error.format(strategy=_lightning_words("strategy"), precision=_lightning_words("precision"))
    tree = make_tree(tmp_path / "data", "dcase2022", machines=("fan",), n_train=4, n_test=1)
    out = tmp_path / "run"
    args = ["--data", str(tree), "--out", str(out), "--model", model, "--param", param, "--no-track"]
    result = asdkit_cli(command, *args)
    assert (result.returncode, result.stderr.strip()) == (2, f"error: {error}")
    assert not out.exists()


def test_asdkit_detectors_lists_the_words() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "asdkit", "detectors"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    ensemble = lines.index(next(line for line in lines if line.startswith("ensemble: ")))
    assert (
        lines[ensemble + 2]
        == "    one of: normalise: zscore|rank; select: auto|evidence|none; combine: mean|max"
    )
    assert lines[ensemble + 3] == "    ranges: seed >= 0; evidence_clips >= 1; evidence_folds >= 2"
    made = lines.index(next(line for line in lines if line.startswith("made: ")))
    assert lines[made + 2] == (
        "    one of: proxy_outliers: none|other_sections|other_sections_and_machines|other_machines"
    )
    trainer = lines.index(
        "trainer settings of every network detector (with epochs), from the installed Lightning:"
    )
    assert lines[trainer + 2] == f"    strategy: {_lightning_words('strategy').replace(', ', '|')}"
    assert lines[trainer + 3] == f"    precision: {_lightning_words('precision').replace(', ', '|')}"
    assert not any("ddp_spawn" in line for line in lines[:trainer])  # listed once, not per detector


def test_precision_words_fall_back_to_the_documented_ones_when_lightning_moves_its_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from asdkit.detectors.deep import DOCUMENTED_PRECISIONS, lightning_precisions

    assert set(DOCUMENTED_PRECISIONS) <= set(lightning_precisions())  # the installed release takes them all
    monkeypatch.setitem(
        sys.modules, "lightning.fabric.connector", types.ModuleType("lightning.fabric.connector")
    )
    assert lightning_precisions() == DOCUMENTED_PRECISIONS
