"""Run configurations from files: recipes (YAML) and a finished run's ``config.json``, validated by pydantic.

A configuration holds what ``asdkit run`` takes as flags (data, out, model, params, machines, layout,
features, seed, seeds, ...); flags given on the command line win over it, and each ``--param`` wins over
the same key of ``params``. A recipe names the published system it follows in its header comment; the
packaged ones live in :mod:`asdkit.recipes` and are found by name (``--config dcase2020_baseline``).

A value ``"<required: ...>"`` in a recipe marks a parameter the user must supply (e.g. the run directory
a fine-tuning step starts from); running without it is one line naming the parameter.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from asdkit.errors import AsdkitError
from asdkit.features.config import FeatureConfig
from asdkit.rundir import CONFIG_FILE

log = logging.getLogger(__name__)

RECIPES_PACKAGE = "asdkit.recipes"
REQUIRED_MARK = "<required"
#: Detector parameters that a run's config.json records but the command line owns (--seed, --quiet).
_RECORDED_ONLY_PARAMS = ("seed", "progress")


class ConfigFileError(AsdkitError):
    """A configuration file that cannot be read or does not validate (the message names the key)."""


class RunConfig(BaseModel):
    """What a configuration file may set; every key is optional (flags and defaults fill the rest)."""

    model_config = ConfigDict(extra="forbid", strict=False)

    data: Path | None = None
    out: Path | None = None
    model: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    machines: list[str] | None = None
    layout: str | None = None
    ground_truth: Path | None = None
    seed: int | None = None
    seeds: list[int] | None = None
    debug: bool | None = None
    cache_dir: Path | None = None
    channel: int | Literal["mix"] | None = None
    features: dict[str, Any] | None = None
    plots: bool | None = None
    description: str | None = None

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds_text(cls, value: Any) -> Any:
        """Seeds as the command line writes them ("0-3", "0,1,2") or as a list."""
        if isinstance(value, str):
            from asdkit.seeds import parse_seeds

            return parse_seeds(value)
        return value

    @field_validator("machines", mode="before")
    @classmethod
    def _one_machine(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("features")
    @classmethod
    def _feature_settings(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """Names and types of FeatureConfig's fields (YAML reads ``1e-10`` as text: it becomes a float)."""
        if value is None:
            return None
        kind, settings = FeatureConfig.split_front_end(value)  # ValueError naming unknown settings
        try:
            return TypeAdapter(kind).validate_python(settings).to_dict()
        except ValidationError as exc:
            error = exc.errors()[0]
            raise ValueError(f"{'.'.join(map(str, error['loc']))}: {error['msg']}") from None

    def feature_config(self) -> FeatureConfig | None:
        if self.features is None:
            return None
        features = FeatureConfig.from_dict(self.features)
        return features if self.channel is None else replace(features, channel=self.channel)


def recipe_names() -> list[str]:
    """Names of the recipes shipped with asdkit (file names without ``.yaml``)."""
    folder = resources.files(RECIPES_PACKAGE)
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def recipe_text(name: str) -> str:
    if name not in recipe_names():
        raise ConfigFileError(f"no recipe named {name!r}; recipes: {', '.join(recipe_names())}")
    return resources.files(RECIPES_PACKAGE).joinpath(f"{name}.yaml").read_text(encoding="utf-8")


def recipe_summary(text: str) -> str:
    """The first header comment line of a recipe: what it reproduces."""
    for line in text.splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return ""


def load_run_config(path_or_name: Path | str) -> RunConfig:
    """Read and validate a recipe (YAML), a run's ``config.json``, or a packaged recipe by name."""
    path = Path(path_or_name)
    if path.is_dir() and (path / CONFIG_FILE).is_file():
        path = path / CONFIG_FILE
    if path.is_file():
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigFileError(f"{path}: cannot read ({exc})") from None
    elif path.suffix or "/" in str(path_or_name):
        raise ConfigFileError(f"{path}: no such configuration file")
    else:
        source, text = f"recipe {path_or_name}", recipe_text(str(path_or_name))
    return parse_run_config(text, source)


def parse_run_config(text: str, source: str) -> RunConfig:
    try:
        # a run's config.json is read as JSON: YAML 1.1 would read numbers such as 1e-10 as text
        data = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ConfigFileError(f"{source}: not valid JSON (line {exc.lineno})") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ConfigFileError(f"{source}: not valid YAML{line}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigFileError(f"{source}: expected a mapping of settings, got {type(data).__name__}")
    if _is_run_record(data):
        data = _from_run_record(data)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(p) for p in error["loc"]) or "(top level)"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = f"unknown setting (allowed: {', '.join(RunConfig.model_fields)})"
        raise ConfigFileError(f"{source}: {key}: {message}") from None
    except AsdkitError as exc:  # e.g. bad seeds text
        raise ConfigFileError(f"{source}: seeds: {exc}") from None


def _is_run_record(data: dict[str, Any]) -> bool:
    return "environment" in data and "status" in data


def _from_run_record(data: dict[str, Any]) -> dict[str, Any]:
    """The settings of a run's config.json: what it recorded about the run itself is dropped."""
    kept = {k: v for k, v in data.items() if k in RunConfig.model_fields}
    params = dict(kept.get("params") or {})
    for key in _RECORDED_ONLY_PARAMS:
        params.pop(key, None)
    kept["params"] = params
    log.info("configuration from run record: %s", ", ".join(sorted(kept)))
    return kept


def check_params(model: str, params: dict[str, Any], source: str) -> None:
    """Unknown parameter names and unset ``<required: ...>`` values, as one line naming the key."""
    from asdkit.detectors.registry import get_detector_class

    known = get_detector_class(model)().get_params()
    for key, value in params.items():
        if key not in known:
            raise ConfigFileError(f"{source}: params.{key}: not a parameter of {model} ({', '.join(known)})")
        if isinstance(value, str) and value.startswith(REQUIRED_MARK):
            raise ConfigFileError(f"{source}: params.{key}: {value.strip('<>')}; give --param {key}=...")


def cli_defaults(config: RunConfig) -> dict[str, Any]:
    """The configuration as click default values of ``asdkit run``'s options (flags still win)."""
    values: dict[str, Any] = {
        "data": config.data,
        "out": config.out,
        "model": config.model,
        "machine": config.machines,
        "layout": config.layout,
        "ground_truth": config.ground_truth,
        "seed": config.seed,
        "debug": config.debug,
        "cache_dir": config.cache_dir,
        "no_plots": None if config.plots is None else not config.plots,
        "seeds": None if config.seeds is None else ",".join(map(str, config.seeds)),
    }
    features = config.feature_config()
    if features is not None:
        from asdkit.features.noise_aware import channel_choice

        values["channel"] = channel_choice(features)
    elif config.channel is not None:
        values["channel"] = str(config.channel)
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in values.items() if v is not None}


def to_json(config: RunConfig) -> str:
    return json.dumps(config.model_dump(mode="json", exclude_none=True), indent=2)
