"""The synthetic data generator: DCASE names and counts, 16-bit audio that looks like machines, determinism,
anomalies that are measurable and graded by severity, and specs that are refused with the field named."""

from __future__ import annotations

import csv
import itertools
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asdkit.data.synthetic import (
    ANOMALY_KINDS,
    MACHINE_TYPES,
    SEVERITY_LEVELS,
    TRUTH_FILE,
    SyntheticSpec,
    clip_rng,
    generate,
    synthesize_clip,
    writer,
)

TINY = SyntheticSpec.tiny()


@pytest.fixture(scope="module")
def tiny_2022(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("syn2022"), "dcase2022", TINY)


def _wavs(root: Path) -> list[Path]:
    return sorted(root.rglob("*.wav"))


def _truth(root: Path) -> list[dict[str, str]]:
    with open(root / TRUTH_FILE, newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------------------------- spec


def test_default_spec_is_dcase2022_style() -> None:
    spec = SyntheticSpec()
    assert spec.sections == 3
    assert len(spec.machines) >= 3
    assert len({MACHINE_TYPES[m] for m in spec.machines}) >= 3, "machines of different character"
    assert spec.n_train_target <= 0.1 * spec.n_train_source, "few target training clips"
    assert spec.duration == 10.0 and spec.sample_rate == 16000


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("machines", ("pump", "drill")),
        ("machines", ()),
        ("machines", "pump"),
        ("machines", ("fan", "fan")),
        ("sections", 0),
        ("sections", 101),
        ("n_train_source", 0),
        ("n_train_target", -1),
        ("n_test_normal", 0),
        ("n_test_anomaly", 0),
        ("n_test_anomaly", 2.5),
        ("n_train_source", True),
        ("duration", 0.0),
        ("duration", -1.0),
        ("sample_rate", 0),
        ("seed", -3),
    ],
)
def test_bad_spec_is_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"^{field}:"):
        SyntheticSpec(**{field: value})  # type: ignore[arg-type]


def test_machines_given_as_a_list_become_a_tuple() -> None:
    spec = SyntheticSpec(machines=["valve", "gearbox"])  # type: ignore[arg-type]
    assert spec.machines == ("valve", "gearbox")
    assert hash(spec) == hash(SyntheticSpec(machines=("valve", "gearbox")))


def test_more_target_than_source_training_clips_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^n_train_target:"):
        SyntheticSpec(n_train_source=4, n_train_target=5)


def test_unknown_layout_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^layout:.*dcase2022"):
        generate(tmp_path, "dcase2019", TINY)
    assert not any(tmp_path.iterdir()), "nothing written for a refused layout"


def test_synthesize_clip_refuses_bad_arguments() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"^machine:"):
        synthesize_clip("drill", 0, "source", None, 0.0, rng, 1.0, 16000)
    with pytest.raises(ValueError, match=r"^anomaly:"):
        synthesize_clip("fan", 0, "source", "timing", 1.0, rng, 1.0, 16000)
    with pytest.raises(ValueError, match=r"^domain:"):
        synthesize_clip("fan", 0, "eval", None, 0.0, rng, 1.0, 16000)
    with pytest.raises(ValueError, match=r"^severity:"):
        synthesize_clip("fan", 0, "source", "rub", 1.5, rng, 1.0, 16000)


# ----------------------------------------------------------------------------------------- determinism


def test_same_spec_and_seed_give_byte_identical_files(tmp_path: Path, tiny_2022: Path) -> None:
    again = generate(tmp_path / "again", "dcase2022", TINY)
    first, second = _wavs(tiny_2022), _wavs(again)
    assert [p.relative_to(tiny_2022) for p in first] == [p.relative_to(again) for p in second]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second, strict=True))
    assert (tiny_2022 / TRUTH_FILE).read_bytes() == (again / TRUTH_FILE).read_bytes()


def test_a_clip_does_not_depend_on_the_other_clips(tmp_path: Path, tiny_2022: Path) -> None:
    """Fewer machines and more clips: every clip present in both runs is the same bytes."""
    other = generate(
        tmp_path,
        "dcase2022",
        SyntheticSpec.tiny(machines=("slider", "fan"), n_train_source=6, n_test_anomaly=3),
    )
    common = {p.relative_to(other) for p in _wavs(other)} & {
        p.relative_to(tiny_2022) for p in _wavs(tiny_2022)
    }
    assert len(common) >= 40
    assert all((other / rel).read_bytes() == (tiny_2022 / rel).read_bytes() for rel in common)


def test_worker_threads_write_the_same_bytes(tmp_path: Path, tiny_2022: Path) -> None:
    threaded = generate(tmp_path, "dcase2022", TINY, workers=3)
    first, second = _wavs(tiny_2022), _wavs(threaded)
    assert [p.relative_to(tiny_2022) for p in first] == [p.relative_to(threaded) for p in second]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second, strict=True))
    assert (tiny_2022 / TRUTH_FILE).read_bytes() == (threaded / TRUTH_FILE).read_bytes()


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_bad_worker_count_is_refused(tmp_path: Path, workers: object) -> None:
    with pytest.raises(ValueError, match=r"^workers:"):
        generate(tmp_path, "dcase2022", TINY, workers=workers)  # type: ignore[arg-type]


def test_another_seed_gives_other_clips(tmp_path: Path, tiny_2022: Path) -> None:
    other = generate(tmp_path, "dcase2022", SyntheticSpec.tiny(seed=1))
    a = sf.read(_wavs(tiny_2022)[0])[0]
    b = sf.read(_wavs(other)[0])[0]
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_synthesize_clip_returns_what_the_file_holds(tiny_2022: Path) -> None:
    path = tiny_2022 / "fan" / "train"
    name = next(p.name for p in path.glob("section_01_source_train_normal_0002_*.wav"))
    on_disk, _ = sf.read(path / name, dtype="float32")
    rng = clip_rng(TINY.seed, "fan", 1, "source", "train", 0, 2)
    made = synthesize_clip("fan", 1, "source", None, 0.0, rng, TINY.duration, TINY.sample_rate)
    assert made.dtype == np.float32
    np.testing.assert_array_equal(made, on_disk)


# --------------------------------------------------------------------------------------------- layouts

_P2022 = re.compile(
    r"^section_(?P<sec>\d{2})_(?P<dom>source|target)_(?P<split>train|test)_(?P<state>normal|anomaly)_"
    r"(?P<idx>\d{4})(?P<attrs>(_[A-Za-z-]+_[0-9.]+)+)\.wav$"
)
_P2021 = re.compile(
    r"^section_(?P<sec>\d{2})_(?P<dom>source|target)_(?P<split>train|test)_(?P<state>normal|anomaly)_"
    r"(?P<idx>\d{4})\.wav$"
)
_P2020 = re.compile(r"^(?P<state>normal|anomaly)_id_(?P<sec>\d{2})_(?P<idx>\d{8})\.wav$")
_PFOLDER = re.compile(r"^section_(?P<sec>\d{2})_(?P<dom>source|target)_(?P<idx>\d{4})\.wav$")


def _expected_counts(spec: SyntheticSpec, domains: tuple[str, ...]) -> Counter[tuple[str, str, str, str]]:
    """(machine, domain, split, state) -> clips, summed over sections."""
    want: Counter[tuple[str, str, str, str]] = Counter()
    for m in spec.machines:
        for d in domains:
            want[(m, d, "train", "normal")] = spec.sections * (
                spec.n_train_source if d == "source" else spec.n_train_target
            )
            want[(m, d, "test", "normal")] = spec.sections * spec.n_test_normal
            want[(m, d, "test", "anomaly")] = spec.sections * spec.n_test_anomaly
    return want


def test_dcase2022_names_attributes_and_counts(tiny_2022: Path) -> None:
    seen: Counter[tuple[str, str, str, str]] = Counter()
    attrs: dict[tuple[str, str, str], set[str]] = {}
    for path in _wavs(tiny_2022):
        machine, folder = path.relative_to(tiny_2022).parts[:2]
        m = _P2022.match(path.name)
        assert m, path.name
        assert folder == m["split"]
        assert int(m["sec"]) < TINY.sections
        seen[(machine, m["dom"], m["split"], m["state"])] += 1
        attrs.setdefault((machine, m["sec"], m["dom"]), set()).add(m["attrs"])
    assert seen == _expected_counts(TINY, ("source", "target"))
    for machine in TINY.machines:
        for sec in ("00", "01"):
            source, target = attrs[(machine, sec, "source")], attrs[(machine, sec, "target")]
            assert not source & target, f"{machine} section {sec}: target condition equals a source one"
        assert not attrs[(machine, "00", "source")] & attrs[(machine, "01", "source")], "sections differ"


def test_dcase2021_names_folders_and_counts(tmp_path: Path) -> None:
    root = generate(tmp_path, "dcase2021", TINY)
    seen: Counter[tuple[str, str, str, str]] = Counter()
    for path in _wavs(root):
        machine, folder = path.relative_to(root).parts[:2]
        m = _P2021.match(path.name)
        assert m, path.name
        assert folder == ("train" if m["split"] == "train" else f"{m['dom']}_test")
        seen[(machine, m["dom"], m["split"], m["state"])] += 1
    assert seen == _expected_counts(TINY, ("source", "target"))


def test_dcase2020_names_ids_and_counts(tmp_path: Path) -> None:
    root = generate(tmp_path, "dcase2020", TINY)
    seen: Counter[tuple[str, str, str, str]] = Counter()
    ids = set()
    for path in _wavs(root):
        machine, folder = path.relative_to(root).parts[:2]
        m = _P2020.match(path.name)
        assert m, path.name
        assert folder in ("train", "test")
        assert folder == "test" or m["state"] == "normal"
        ids.add(m["sec"])
        seen[(machine, "source", folder, m["state"])] += 1
    assert ids == {"00", "02"}
    assert seen == _expected_counts(TINY, ("source",))


def test_folder_layout_labels_by_folder(tmp_path: Path) -> None:
    root = generate(tmp_path, "folder", SyntheticSpec.tiny(machines=("valve",)))
    rel = [p.relative_to(root) for p in _wavs(root)]
    assert all(r.parts[0] == "valve" and _PFOLDER.match(r.name) for r in rel)
    by_folder = Counter(r.parent.as_posix() for r in rel)
    spec = SyntheticSpec.tiny()
    per_domain = spec.sections
    assert by_folder == {
        "valve/train": per_domain * (spec.n_train_source + spec.n_train_target),
        "valve/test/normal": 2 * per_domain * spec.n_test_normal,
        "valve/test/anomaly": 2 * per_domain * spec.n_test_anomaly,
    }


def test_truth_file_describes_every_clip(tiny_2022: Path) -> None:
    rows = _truth(tiny_2022)
    assert sorted(r["path"] for r in rows) == sorted(
        p.relative_to(tiny_2022).as_posix() for p in _wavs(tiny_2022)
    )
    for r in rows:
        if r["label"] == "1":
            assert r["anomaly"] in ANOMALY_KINDS[r["machine"]]
            assert r["severity_level"] in SEVERITY_LEVELS
            assert 0.0 < float(r["severity"]) <= 1.0
            assert r["split"] == "test" and "_anomaly_" in r["path"]
        else:
            assert r["anomaly"] == "" and float(r["severity"]) == 0.0
        assert r["attributes"] in r["path"]


def test_anomalies_cycle_through_kinds_and_severities(tmp_path: Path) -> None:
    spec = SyntheticSpec.tiny(machines=("pump",), sections=1, n_test_anomaly=8)
    rows = [r for r in _truth(generate(tmp_path, "dcase2022", spec)) if r["label"] == "1"]
    for domain in ("source", "target"):
        pairs = Counter((r["anomaly"], r["severity_level"]) for r in rows if r["domain"] == domain)
        assert set(pairs) == {(k, s) for k in ANOMALY_KINDS["pump"] for s in SEVERITY_LEVELS}


def test_no_temporary_files_left_and_interrupted_runs_leave_only_complete_files(
    tmp_path: Path, tiny_2022: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not [p for p in tiny_2022.rglob("*") if p.is_file() and p.name.startswith(".")]
    real_render = writer._render
    calls = {"n": 0}

    def failing_render(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return real_render(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(writer, "_render", failing_render)
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path, "dcase2022", TINY)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 5 and all(p.suffix == ".wav" for p in files)
    for p in files:
        assert sf.info(p).frames == round(TINY.duration * TINY.sample_rate)


def test_files_are_readable_by_others_as_the_umask_allows(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        root = generate(tmp_path, "folder", SyntheticSpec.tiny(machines=("fan",), sections=1))
    finally:
        os.umask(old)
    assert {p.stat().st_mode & 0o777 for p in _wavs(root)} == {0o644}


# ------------------------------------------------------------------------------------------------ audio


def test_clips_are_16_bit_pcm_at_the_right_rate_and_length(tiny_2022: Path) -> None:
    for path in _wavs(tiny_2022)[::5]:
        info = sf.info(path)
        assert (info.subtype, info.samplerate, info.channels) == ("PCM_16", 16000, 1)
        assert info.frames == round(TINY.duration * TINY.sample_rate)


def test_levels_like_real_recordings_no_clipping_never_silent(tiny_2022: Path) -> None:
    for path in _wavs(tiny_2022):
        x, _ = sf.read(path, dtype="float64")
        rms_db = 20 * np.log10(np.sqrt(np.mean(x**2)))
        peak = np.max(np.abs(x))
        assert -42.0 < rms_db < -34.0, (path.name, rms_db)
        assert peak <= 0.5, path.name
        assert np.mean(np.abs(x) < 1.5 / 32768) < 0.05, "background noise is always there"


def test_other_sample_rates_and_durations() -> None:
    x = synthesize_clip("gearbox", 4, "target", "tooth", 1.0, np.random.default_rng(3), 0.75, 22050)
    assert x.shape == (round(0.75 * 22050),)
    assert np.all(np.isfinite(x)) and np.max(np.abs(x)) <= 0.5


def _bands(x: np.ndarray, sr: int = 16000) -> np.ndarray:
    """Mean power density in 20 log-spaced bands per frame (a crude mel front end): frames x bands, dB."""
    n_fft, hop = 1024, 512
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    edges = np.geomspace(60.0, sr / 2, 21)  # every band holds at least one FFT bin
    bins = np.fft.rfftfreq(n_fft, 1 / sr)
    bands = np.stack(
        [power[:, (bins >= lo) & (bins < hi)].mean(1) for lo, hi in itertools.pairwise(edges)], 1
    )
    return 10 * np.log10(bands + 1e-12)


def _profile(x: np.ndarray) -> np.ndarray:
    """Mean band levels and their frame-to-frame variation: spectral shape and temporal texture."""
    b = _bands(x)
    return np.concatenate([b.mean(0), b.std(0), np.abs(np.diff(b, axis=0)).mean(0)])


def _distances(machine: str, duration: float = 2.0, n: int = 6) -> tuple[float, float, float]:
    """Mean standardised distance from the normal profile of normal, low- and high-severity clips.

    The three sets share their seeds, so they differ only by the anomaly (averaged over its kinds).
    """

    def profiles(kind: str | None, severity: float, offset: int) -> list[np.ndarray]:
        return [
            _profile(
                synthesize_clip(
                    machine, 0, "source", kind, severity, np.random.default_rng(offset + i), duration, 16000
                )
            )
            for i in range(n)
        ]

    reference = np.array(profiles(None, 0.0, 1000))
    mu, sd = reference.mean(0), reference.std(0) + 0.3

    def distance(kind: str | None, severity: float) -> float:
        return float(
            np.mean([np.sqrt(np.mean(((p - mu) / sd) ** 2)) for p in profiles(kind, severity, 3000)])
        )

    kinds = ANOMALY_KINDS[machine]
    normal = distance(None, 0.0)
    low = float(np.mean([distance(k, SEVERITY_LEVELS["low"]) for k in kinds]))
    high = float(np.mean([distance(k, SEVERITY_LEVELS["high"]) for k in kinds]))
    return normal, low, high


def test_anomalies_are_measurable_and_graded_by_severity() -> None:
    """Normals < low-severity < high-severity anomalies in distance from the normal profile."""
    table = {m: _distances(m) for m in sorted(MACHINE_TYPES)}
    for machine, (normal, low, high) in table.items():
        assert low < high, (machine, table[machine])
        assert high > 1.25 * normal, (machine, table[machine])
    normals, lows, _ = np.mean(list(table.values()), axis=0)
    assert lows > normals, table


def test_domain_shift_changes_the_sound() -> None:
    """Target clips of a section are measurably further from its source clips than other source clips."""
    for machine in ("pump", "fan", "slider"):
        src = [
            _profile(synthesize_clip(machine, 1, "source", None, 0.0, np.random.default_rng(i), 3.0, 16000))
            for i in range(6)
        ]
        tgt = [
            _profile(
                synthesize_clip(machine, 1, "target", None, 0.0, np.random.default_rng(50 + i), 3.0, 16000)
            )
            for i in range(3)
        ]
        mu, sd = np.mean(src[:3], 0), np.std(src[:3], 0) + 0.05
        within = np.mean([np.sqrt(np.mean(((p - mu) / sd) ** 2)) for p in src[3:]])
        across = np.mean([np.sqrt(np.mean(((p - mu) / sd) ** 2)) for p in tgt])
        assert across > 1.5 * within, (machine, within, across)


def _centred_profile(x: np.ndarray) -> np.ndarray:
    levels = _bands(x).mean(0)
    return levels - levels.mean()


@pytest.mark.parametrize("machine", sorted(MACHINE_TYPES))
def test_spectra_are_low_frequency_heavy_like_machines(machine: str) -> None:
    """Not a toy sine: broadband, falling with frequency, different clip to clip."""
    a, b = (
        synthesize_clip(machine, 1, "source", None, 0.0, np.random.default_rng(i), 3.0, 16000) for i in (1, 2)
    )
    profile = _centred_profile(a)
    assert 10.0 < profile[3:9].mean() - profile[-4:].mean() < 40.0, profile
    assert profile.min() > -40.0, "every band carries some energy (background noise)"
    assert not np.array_equal(a, b)
    assert 0.2 < np.abs(_centred_profile(b) - profile).mean() < 3.0, "variation, but the same machine"


@pytest.mark.shared
@pytest.mark.parametrize(
    ("machine", "pattern"),
    [
        ("pump", "dcase2020_dev_sample/pump/test/normal_*.wav"),
        ("fan", "dcase2020_dev_sample/fan/test/normal_*.wav"),
        ("slider", "dcase2020_dev_sample/slider/test/normal_*.wav"),
        ("valve", "dcase2020_dev_sample/valve/test/normal_*.wav"),
        ("gearbox", "dcase2023_dev_sample/gearbox/*/*_normal_*.wav"),
    ],
)
def test_spectral_profile_is_close_to_real_recordings(shared_data: Path, machine: str, pattern: str) -> None:
    """Band levels (relative to their mean) within a few dB of the real DCASE clips of that machine."""
    files = sorted(shared_data.glob(pattern))[:6]
    assert files, pattern
    real = np.mean([_centred_profile(sf.read(f, dtype="float64", always_2d=True)[0][:, 0]) for f in files], 0)
    synth = np.mean(
        [
            _centred_profile(
                synthesize_clip(machine, s, "source", None, 0.0, np.random.default_rng(s), 4.0, 16000)
            )
            for s in range(3)
        ],
        0,
    )
    assert np.sqrt(np.mean((real - synth) ** 2)) < 4.5, np.round(real - synth, 1)
    assert np.abs(real - synth).max() < 9.0, np.round(real - synth, 1)
