"""Run configurations: packaged recipes validate, bad files fail on one line naming the key."""

from __future__ import annotations

import pytest

from asdkit.detectors.registry import get_detector_class
from asdkit.runconfig import (
    ConfigFileError,
    check_params,
    cli_defaults,
    load_run_config,
    parse_run_config,
    recipe_names,
    recipe_summary,
    recipe_text,
)

SELECTIVE = "dcase2023_baseline_ae_selective_mahalanobis"


@pytest.mark.parametrize("name", recipe_names())
def test_every_recipe_validates_and_names_its_source(name):
    text = recipe_text(name)
    assert "Source:" in text and "Differs:" in text and recipe_summary(text)
    config = load_run_config(name)
    assert config.model is not None and config.feature_config() is not None
    if name == SELECTIVE and "score" not in get_detector_class("ae")().get_params():
        pytest.skip("needs the ae detector's score parameter (selective Mahalanobis)")
    # values the user must give (a run to start from, their encoder weights)
    params = {k: v for k, v in config.params.items() if k not in ("init_from", "checkpoint")}
    check_params(config.model, params, name)


def test_the_recipes_cover_the_published_systems():
    names = set(recipe_names())
    assert {
        "dcase2020_baseline",
        "dcase2021_baseline_ae",
        "dcase2021_baseline_mobilenetv2",
        "dcase2023_baseline_ae",
        SELECTIVE,
        "cpjku2021_resnet_step1",
        "cpjku2021_resnet_step2_ccsa",
        "cpjku2021_made",
        "cpjku2021_maf",
        "dcase2020_vae",
        "dcase2020_conv_ae",
        "genrep2025_frozen_beats_knn",
        "dcase2026_baseline_ae",
        "dcase2026_baseline_ae_selective_mahalanobis",
        "dcase2026_noise_aware",
        "dcase2025_finetuned_beats_arcface",
    } <= names


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("modle: ae\n", "r.yaml: modle: unknown setting"),
        ("seed: abc\n", "r.yaml: seed: Input should be a valid integer"),
        ("params: [1, 2]\n", "r.yaml: params: Input should be a valid dictionary"),
        ("features: {n_mel: 64}\n", "r.yaml: features: Value error, unknown feature settings: n_mel"),
        ("seeds: 1-\n", "r.yaml: seeds:"),
        ("- a\n- b\n", "r.yaml: expected a mapping"),
        ("model: [\n", "r.yaml: not valid YAML"),
    ],
)
def test_a_bad_file_is_one_line_naming_the_key(text, message):
    with pytest.raises(ConfigFileError) as info:
        parse_run_config(text, "r.yaml")
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_unknown_and_required_params_name_the_key():
    with pytest.raises(ConfigFileError, match=r"r\.yaml: params\.epoch: not a parameter of ae"):
        check_params("ae", {"epoch": 3}, "r.yaml")
    config = load_run_config("cpjku2021_resnet_step2_ccsa")
    with pytest.raises(ConfigFileError, match=r"params\.init_from: required: the run directory"):
        check_params("resnet_section", config.params, "step2")


def test_a_run_record_reads_as_its_settings(tmp_path):
    record = (
        '{"status": "complete", "data": "/d", "layout": "dcase2022", "machines": ["fan"], "model": "knn",'
        ' "params": {"k": 2, "seed": 0}, "features": {"n_mels": 64, "channel": 0}, "seed": 3,'
        ' "environment": {"python": "3.11"}, "timings": {"total": 1.0}, "official_score": 0.7}'
    )
    (tmp_path / "config.json").write_text(record)
    config = load_run_config(tmp_path)  # a run directory works too
    assert config.params == {"k": 2} and config.seed == 3 and config.machines == ["fan"]
    assert config.feature_config().n_mels == 64
    defaults = cli_defaults(config)
    assert defaults["data"] == "/d" and defaults["machine"] == ["fan"] and defaults["channel"] == "0"


def test_missing_file_and_unknown_recipe():
    with pytest.raises(ConfigFileError, match="no such configuration file"):
        load_run_config("nowhere/recipe.yaml")
    with pytest.raises(ConfigFileError, match="no recipe named 'nope'"):
        load_run_config("nope")


def test_feature_types_are_checked_and_yaml_exponents_become_numbers():
    config = parse_run_config("features: {amin: 1e-10, n_mels: 64}\n", "r.yaml")
    assert config.feature_config().amin == 1e-10
    with pytest.raises(
        ConfigFileError, match=r"r\.yaml: features: Value error, n_mels: Input should be a valid"
    ):
        parse_run_config("features: {n_mels: many}\n", "r.yaml")


def test_debug_shrinks_a_recipe_but_param_still_wins():
    from types import SimpleNamespace

    from asdkit.cli.workflow import CONFIG_META, run_params

    config = load_run_config("dcase2023_baseline_ae")
    ctx = SimpleNamespace(meta={CONFIG_META: ("recipe", config)})
    assert run_params(ctx, {}, "ae", debug=False)["epochs"] == 100
    debug = run_params(ctx, {}, "ae", debug=True)
    assert "epochs" not in debug and debug["batch_size"] == 256  # make_detector then applies epochs=2
    assert run_params(ctx, {"epochs": 5}, "ae", debug=True)["epochs"] == 5
