"""Detector parameters checked before any work: type from the typed ``__init__``, range from a table.

A wrong value used to surface late and cryptically (``epochs=-1`` trained forever, ``epochs=0`` saved an
untrained model, ``epochs=1.5`` ended in an empty AssertionError). :func:`validate_params` reads each
detector's parameters (``Detector.parameters``: its ``__init__``'s, and a network's TrainerConfig's),
so a new detector is covered without editing it; :data:`RANGES` says which values of a
parameter name make sense (names mean the same thing in every detector that has them), and a detector's
``choices`` which words a text parameter takes (a fixed tuple, or :class:`RegistryWords` of an open
registry, read only when that parameter is given), and its ``parsers`` the grammar of a composite one
(``stats="pooled+delta"``). Then the rules that join parameters, or read a file one names (``weights`` one
per member, ``input=beats`` with a ``checkpoint`` that exists): each class's ``check_params`` raises a
:class:`ParamConflict` (:meth:`Detector.parameter_checks` merges them), fit reading the same helpers.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from asdkit.errors import AsdkitError


class RegistryWords(Sequence[str]):
    """The words of an open registry (Lightning's strategies, the registered front ends), read from it each
    time they are asked for: a detector declares them in ``choices`` without importing the registry (the
    scoring path never imports Lightning), and a strategy or front end registered later is a word too."""

    def __init__(self, read: Callable[[], Iterable[str]]) -> None:
        self._read = read

    def _words(self) -> tuple[str, ...]:
        return tuple(self._read())

    def __getitem__(self, index: Any) -> Any:
        return self._words()[index]

    def __len__(self) -> int:
        return len(self._words())

    def __iter__(self) -> Iterator[str]:
        return iter(self._words())

    def __contains__(self, word: object) -> bool:
        return word in self._words()

    def __repr__(self) -> str:
        return f"RegistryWords({getattr(self._read, '__qualname__', self._read)})"


class ParamConflict(ValueError):
    """Parameters that do not go together, or a file a parameter names that cannot be used: the one-line
    error starts with ``key=value`` and ``problem`` names the parameters it conflicts with."""

    def __init__(self, key: str, value: Any, problem: str) -> None:
        super().__init__(f"{key}={_show(value)}: {problem}")
        self.key = key
        self.value = value
        self.problem = problem


@dataclass(frozen=True)
class Range:
    """Allowed values of a number: ``low``/``high`` bounds, each inclusive unless said otherwise."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    #: values allowed besides the bounds (``devices=-1``: every device, as Lightning reads it)
    also: tuple[float, ...] = ()

    def holds(self, value: float) -> bool:
        if value in self.also:
            return True
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self) -> str:
        besides = "".join(f" or {v:g}" for v in self.also)
        return self._bounds() + besides

    def _bounds(self) -> str:
        if self.low is not None and self.high is not None:
            left, right = ("(" if self.low_open else "["), (")" if self.high_open else "]")
            return f"in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return "any value"


AT_LEAST_1 = Range(1)
AT_LEAST_0 = Range(0)
#: a count of devices, or -1 for all of them (Lightning's ``devices``; its text form is read by the same)
DEVICES = Range(1, also=(-1,))
POSITIVE = Range(0, low_open=True)

#: Allowed ranges by parameter name; types come from the signatures.
RANGES: dict[str, Range] = {
    **dict.fromkeys(
        (
            "epochs",
            "batch_size",
            "n_frames",
            "hidden",
            "bottleneck",
            "n_hidden",
            "n_layers",
            "n_blocks",
            "n_gaussians",
            "n_components",
            "n_subclusters",
            "k",
            "embedding_dim",
            "base_channels",
            "blocks_per_stage",
            "n_stages",
            "latent",
            "patch_frames",
            "snippet_frames",
            "hop_frames",
            "spectrum_fft",
            "rho_t",
            "rho_f",
            "n_centres",
            "n_models",
            "bank_size",
            "evidence_clips",
            "lora_rank",
        ),
        AT_LEAST_1,
    ),
    **dict.fromkeys(
        (
            "seed",
            "time_masks",
            "freq_masks",
            "time_mask_frames",
            "freq_mask_bands",
            "rampdown_start",
            "rampdown_length",
            "ccsa_weight",
            "proxy_lambda",
            "kl_weight",
            "recon_weight",
            "margin",
            "mixup",
            "split_seed",
            "oversample",
        ),
        AT_LEAST_0,
    ),
    **dict.fromkeys(("learning_rate", "width", "scale", "lora_alpha", "segment_seconds"), POSITIVE),
    "validation_fraction": Range(0, 1, high_open=True),
    #: a share of the clip's frames (patch_bank), a factor per layer on the learning rate (finetune)
    **dict.fromkeys(("fraction", "layer_decay"), Range(0, 1, low_open=True)),
    #: one fold would leave no clips to fit the candidates the evidence judges
    "evidence_folds": Range(2),
    "devices": DEVICES,
}


def validate_params(model: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """``params`` checked against detector ``model``; returns them (numbers given for text made text).

    Raises AsdkitError with one line naming the parameter and what it allows.
    """
    from asdkit.detectors.registry import get_detector_class

    cls = get_detector_class(model)
    parameters = cls.parameters()
    choices = cls.parameter_choices()
    parsers = cls.parameter_parsers()
    known = list(parameters)
    checked: dict[str, Any] = {}
    for key, value in (params or {}).items():
        if key not in known:
            raise AsdkitError(
                f"--param {key}: detector {model!r} has no such parameter; it takes {', '.join(known)}"
            )
        annotation = parameters[key].annotation
        annotation = Any if annotation is inspect.Parameter.empty else annotation
        value = _coerce(value, annotation)
        problem = _problem(value, annotation, RANGES.get(key))
        if problem is None and isinstance(value, str) and key in choices and value not in choices[key]:
            problem = f"one of {', '.join(choices[key])}"
        if problem is not None:
            raise AsdkitError(f"--param {key}={_show(value)}: {model} expects {problem}")
        if isinstance(value, str) and key in parsers:
            try:
                parsers[key](value)
            except (ValueError, AsdkitError) as exc:  # the parser's words, less its own "key: "
                detail = str(exc).removeprefix(f"{key}: ")
                raise AsdkitError(f"--param {key}={value}: {model}: {detail}") from None
        checked[key] = value
    for where, inner, given in cls.nested_params(checked):
        try:
            validate_params(inner, given)
        except AsdkitError as exc:
            raise AsdkitError(f"--param {where}: {str(exc).removeprefix('--param ')}") from None
    every = {k: p.default for k, p in parameters.items() if p.default is not inspect.Parameter.empty}
    for check in cls.parameter_checks():
        try:
            check(every | checked)
        except ParamConflict as exc:
            raise AsdkitError(f"--param {exc.key}={_show(exc.value)}: {model}: {exc.problem}") from None
    return checked


def _members(annotation: Any) -> tuple[Any, ...]:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return typing.get_args(annotation)
    return (annotation,)


def _coerce(value: Any, annotation: Any) -> Any:
    """A number where only text is allowed (``--param quantiles=0.5``) is the text the user typed."""
    members = _members(annotation)
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if numeric and str in members and not ({int, float} & set(members)):
        return str(value)
    return value


def _problem(value: Any, annotation: Any, bounds: Range | None) -> str | None:
    """None when ``value`` fits; else what would fit, e.g. ``an integer >= 1``."""
    members = _members(annotation)
    if any(m is Any for m in members):
        return None
    for member in members:
        if _fits(value, member):
            if _is_number(value) and bounds is not None and not bounds.holds(value):
                return _expectation(members, bounds)
            if isinstance(value, float) and not math.isfinite(value):
                return _expectation(members, bounds)
            return None
    return _expectation(members, bounds)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fits(value: Any, member: Any) -> bool:
    origin = typing.get_origin(member) or member
    if member is type(None):
        return value is None
    if member is bool:
        return isinstance(value, bool)
    if member is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if member is float:
        return _is_number(value)
    if isinstance(origin, type):
        return isinstance(value, origin)
    return True


_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "text", type(None): "null"}


def _expectation(members: tuple[Any, ...], bounds: Range | None) -> str:
    names = []
    for member in members:
        name = _NAMES.get(member) or f"a {getattr(typing.get_origin(member) or member, '__name__', member)}"
        if member in (int, float) and bounds is not None:
            name = f"{name} {bounds.describe()}"
        elif member is float:
            name = "a finite number"
        names.append(name)
    return " or ".join(names)


def _show(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)
