"""Tiny dataset trees of every layout, with short synthetic clips, for tests that need files on disk.

``make_tree(tmp_path, "dcase2022")`` writes a tree and returns the folder to scan. Clips are 0.5 s at
16 kHz (16-bit PCM): a machine-specific hum plus a little noise; anomalies add a high tone and more
noise, so even a simple detector can tell them apart. Names and paths come from the layouts' naming rules
(:mod:`asdkit.data.naming`). Sizes, per machine and section:

- dcase2020: ``n_train`` train clips; test ``n_test`` normal + ``n_test`` anomaly. Sections "00", "02".
- dcase2021: train ``n_train`` source + ``n_target_train`` target; ``source_test/`` and ``target_test/``
  each ``n_test`` normal + ``n_test`` anomaly. Sections "00", "01".
- dcase2022: as 2021, but one ``test/`` folder holds both domains; names end in attributes (see
  ``TAILS``); ``attributes_csv=True`` also writes ``<machine>/attributes_XX.csv`` with one extra pair
  ``rec=rNN`` that only the table knows.
- eval (``year`` 2020, 2021 or 2022): dev-style ``train/`` as that year, and anonymised test names,
  ``4 * n_test`` per section (2021: ``2 * n_test`` per domain folder). Test clip ``i`` of a section is an
  anomaly when ``i`` is odd and (2022) in the target domain when ``(i // 2)`` is odd. Sections "03", "04".
  ``ground_truth=DIR`` writes the matching official lists there (the year's own format).
- folder (``variant`` "subfolders", "labels_csv", "labels_csv_in_test" or "unlabelled"): ``train/*.wav``
  and test clips as the variant says; one section, ``n_test`` of each class.
"""

from __future__ import annotations

import csv
from pathlib import Path
from types import ModuleType

import numpy as np
import soundfile as sf

from asdkit.data.manifest import ANOMALY, NORMAL, SOURCE, TARGET, TEST, TRAIN
from asdkit.data.naming import ClipName, dcase2020, dcase2021, dcase2022, evalset, folder

SAMPLE_RATE = 16000
DURATION = 0.5
LAYOUTS = ("dcase2020", "dcase2021", "dcase2022", "eval", "folder")
DEFAULT_MACHINES = ("fan", "valve")
#: Attribute tails of dcase2022 names, by machine (anything else gets ``noAttribute``).
TAILS = {
    "fan": "m-n_W",
    "valve": "pat_01",
    "ToyCar": "car_C2_spd_34V_mic_1",
    "slider": "vel_730_ac_0.11",
    "gearbox": "volt_1.5_wt_150",
}
FOLDER_VARIANTS = ("subfolders", "labels_csv", "labels_csv_in_test", "unlabelled")
DOMAINS = (SOURCE, TARGET)


def write_clip(
    path: Path,
    *,
    anomaly: bool = False,
    seed: int = 0,
    base_hz: float = 220.0,
    duration: float = DURATION,
    sample_rate: int = SAMPLE_RATE,
    channels: int = 1,
) -> Path:
    """Write one synthetic clip: a hum at ``base_hz`` plus noise (anomalies: a 3.1 kHz tone, more noise)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration * sample_rate)) / sample_rate
    wave = 0.3 * np.sin(2 * np.pi * base_hz * t) + 0.02 * rng.standard_normal(t.size)
    if anomaly:
        wave += 0.2 * np.sin(2 * np.pi * 3100.0 * t) + 0.05 * rng.standard_normal(t.size)
    data = np.stack([wave * (1.0 - 0.1 * c) for c in range(channels)], axis=1) if channels > 1 else wave
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(data, -1, 1).astype(np.float32), sample_rate, subtype="PCM_16")
    return path


class _Writer:
    """Writes clips at paths relative to the root, numbered so every file gets its own deterministic noise."""

    def __init__(self, root: Path, duration: float, sample_rate: int) -> None:
        self.root = root
        self.count = 0
        self.duration = duration
        self.sample_rate = sample_rate
        self.machine_index = 0  # each machine hums at its own pitch

    def __call__(self, rel: str, anomaly: bool) -> str:
        """Write the clip at ``rel`` (from the naming rules); its file name."""
        self.count += 1
        return write_clip(
            self.root / rel,
            anomaly=anomaly,
            seed=self.count,
            base_hz=180.0 + 60.0 * self.machine_index,
            duration=self.duration,
            sample_rate=self.sample_rate,
        ).name


def _tail(machine: str) -> str:
    return TAILS.get(machine, "noAttribute")


def _dcase2020(machine: str, sections: tuple[str, ...], n_train: int, n_test: int, w: _Writer) -> None:
    for sec in sections:
        for i in range(n_train):
            w(dcase2020.clip_path(machine, ClipName(sec, i, NORMAL, SOURCE, TRAIN)), False)
        for i in range(n_test):
            for label in (NORMAL, ANOMALY):
                w(dcase2020.clip_path(machine, ClipName(sec, i, label, SOURCE, TEST)), label == ANOMALY)


def _section_train(
    naming: ModuleType, machine: str, sec: str, n_train: int, n_target: int, tail: str, w: _Writer
) -> list[str]:
    """Source then target training clips of one section (2021+ names); their file names."""
    return [
        w(naming.clip_path(machine, ClipName(sec, i, NORMAL, domain, TRAIN, tail)), False)
        for domain, n in ((SOURCE, n_train), (TARGET, n_target))
        for i in range(n)
    ]


def _section_test(
    naming: ModuleType, machine: str, sec: str, n_test: int, tail: str, w: _Writer
) -> list[str]:
    """``n_test`` normal and ``n_test`` anomalous test clips per domain (2021+ names); their file names."""
    return [
        w(naming.clip_path(machine, ClipName(sec, i, label, domain, TEST, tail)), label == ANOMALY)
        for domain in DOMAINS
        for i in range(n_test)
        for label in (NORMAL, ANOMALY)
    ]


def _dcase2021(
    machine: str, sections: tuple[str, ...], n_train: int, n_target: int, n_test: int, w: _Writer
) -> None:
    for sec in sections:
        _section_train(dcase2021, machine, sec, n_train, n_target, "", w)
        _section_test(dcase2021, machine, sec, n_test, "", w)


def _dcase2022(
    machine: str,
    sections: tuple[str, ...],
    n_train: int,
    n_target: int,
    n_test: int,
    attributes_csv: bool,
    w: _Writer,
) -> None:
    tail = _tail(machine)
    for sec in sections:
        train = _section_train(dcase2022, machine, sec, n_train, n_target, tail, w)
        test = _section_test(dcase2022, machine, sec, n_test, tail, w)
        if attributes_csv:
            rows = [["file_name", "d1p", "d1v", "d2p", "d2v"]]
            for split, names in ((TRAIN, train), (TEST, test)):
                rows += [[f"{machine}/{split}/{name}", "rec", f"r{sec}", "", ""] for name in sorted(names)]
            _write_csv(w.root / machine / f"attributes_{sec}.csv", rows)


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def _eval(
    machine: str,
    year: int,
    sections: tuple[str, ...],
    n_train: int,
    n_test: int,
    gt: Path | None,
    w: _Writer,
) -> None:
    """An evaluation tree; hidden truth: clip i is an anomaly when odd, target when (i // 2) is odd."""
    eval_list: list[list[str]] = []
    for sec in sections:
        if year == 2020:
            for i in range(n_train):
                w(dcase2020.clip_path(machine, ClipName(sec, i, NORMAL, SOURCE, TRAIN)), False)
            for i in range(4 * n_test):
                label = i % 2
                name = w(
                    evalset.clip_path(machine, ClipName(sec, i, None, SOURCE, TEST), 2020), label == ANOMALY
                )
                full = dcase2020.format_name(ClipName(sec, 100 + i, label, SOURCE))
                eval_list.append([name, full, str(label)])
        elif year == 2021:
            _section_train(dcase2021, machine, sec, n_train, 1, "", w)
            for domain in DOMAINS:
                rows = []
                for i in range(2 * n_test):
                    label = i % 2
                    name = w(
                        evalset.clip_path(machine, ClipName(sec, i, None, domain, TEST), 2021),
                        label == ANOMALY,
                    )
                    rows.append([name, str(label)])
                if gt is not None:
                    _write_csv(gt / f"ground_truth_{dcase2021.group(machine, sec, domain)}.csv", rows)
        else:
            tail = _tail(machine)
            _section_train(dcase2022, machine, sec, n_train, 1, tail, w)
            labels, domains, names = [], [], []
            for i in range(4 * n_test):
                label, target = i % 2, (i // 2) % 2
                name = w(evalset.clip_path(machine, ClipName(sec, i, None, "", TEST), 2022), label == ANOMALY)
                labels.append([name, str(label)])
                domains.append([name, str(target)])
                # the attribute lists give full names without the extension
                full = ClipName(sec, i, label, DOMAINS[target], TEST, tail, suffix="")
                names.append([name, dcase2022.format_name(full)])
            if gt is not None:
                base = f"ground_truth_{dcase2022.group(machine, sec)}.csv"
                _write_csv(gt / "ground_truth_data" / base, labels)
                _write_csv(gt / "ground_truth_domain" / base, domains)
                _write_csv(gt / "ground_truth_attributes" / base, names)
    if gt is not None and year == 2020:
        path = gt / "eval_data_list_2020.csv"
        old: list[list[str]] = []
        if path.exists():
            with open(path, newline="") as f:
                old = list(csv.reader(f))
        _write_csv(path, [*old, [machine], *eval_list])


def _folder(machine: str, variant: str, n_train: int, n_test: int, w: _Writer) -> None:
    """Names are the user's own here (any name is read); the folders say split and label."""
    for i in range(n_train):
        w(folder.file_path(machine, TRAIN, NORMAL, f"rec_{i:03d}.wav"), False)
    if variant == "subfolders":
        for i in range(n_test):
            w(folder.file_path(machine, TEST, NORMAL, f"ok_{i:03d}.wav"), False)
            w(folder.file_path(machine, TEST, ANOMALY, f"bad_{i:03d}.wav"), True)
        return
    rows = [["file", "label"]]
    for i in range(2 * n_test):
        anomaly = i % 2 == 1
        name = w(folder.file_path(machine, TEST, None, f"clip_{i:03d}.wav"), anomaly)
        rows.append([name, "anomaly" if anomaly else "normal"])
    mdir = w.root / machine
    if variant == "labels_csv":
        _write_csv(mdir / folder.LABELS_FILE, rows)
    elif variant == "labels_csv_in_test":
        _write_csv(
            mdir / TEST / folder.LABELS_FILE,
            [[r[0], {"anomaly": "1", "normal": "0"}.get(r[1], r[1])] for r in rows],
        )


def _junk(mdir: Path, layout: str) -> None:
    """Things every scanner must ignore or skip: non-wav, hidden, AppleDouble, and one odd wav."""
    (mdir / "notes.txt").write_text("not audio\n")
    split = "source_test" if layout == "dcase2021" else "test"
    write_clip(mdir / split / ".hidden.wav")
    write_clip(mdir / split / "._AppleDouble.wav")
    write_clip(mdir / "stray" / "odd_name.wav")  # matches nothing: skipped with a warning
    (mdir / split / "readme.md").write_text("x\n")


def make_tree(
    root: Path,
    layout: str,
    *,
    machines: tuple[str, ...] | list[str] = DEFAULT_MACHINES,
    sections: tuple[str, ...] | None = None,
    n_train: int = 3,
    n_target_train: int = 1,
    n_test: int = 2,
    year: int = 2022,
    variant: str = "subfolders",
    attributes_csv: bool = False,
    single_machine: bool = False,
    junk: bool = False,
    ground_truth: Path | None = None,
    duration: float = DURATION,
    sample_rate: int = SAMPLE_RATE,
) -> Path:
    """Write a ``layout`` tree under ``root`` and return the folder to scan.

    ``single_machine`` writes only the first machine and returns its folder (a one-machine root).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; one of {LAYOUTS}")
    if layout == "folder" and variant not in FOLDER_VARIANTS:
        raise ValueError(f"unknown folder variant {variant!r}; one of {FOLDER_VARIANTS}")
    if layout == "eval" and year not in (2020, 2021, 2022):
        raise ValueError("eval trees come in year 2020, 2021 or 2022 (2022 stands for 2022-2025)")
    root = Path(root)
    machines = tuple(machines[:1] if single_machine else machines)
    w = _Writer(root, duration, sample_rate)
    defaults = {"dcase2020": ("00", "02"), "eval": ("03", "04")}
    secs = sections or defaults.get(layout, ("00", "01"))
    if layout == "eval" and ground_truth is not None:
        ground_truth.mkdir(parents=True, exist_ok=True)
    for mi, machine in enumerate(machines):
        w.machine_index = mi
        if layout == "dcase2020":
            _dcase2020(machine, secs, n_train, n_test, w)
        elif layout == "dcase2021":
            _dcase2021(machine, secs, n_train, n_target_train, n_test, w)
        elif layout == "dcase2022":
            _dcase2022(machine, secs, n_train, n_target_train, n_test, attributes_csv, w)
        elif layout == "eval":
            _eval(machine, year, secs, n_train, n_test, ground_truth, w)
        else:
            _folder(machine, variant, n_train, n_test, w)
        if junk:
            _junk(root / machine, layout)
    return root / machines[0] if single_machine else root
