"""Where each DCASE Task 2 data set lives: Zenodo records, archive names and the folder each unpacks into.

Facts only (no code paths): record ids and file names are those of the organisers' download scripts in
``nttcslab/dcase2023_task2_baseline_ae`` (``tools/data_download_20XX.sh``, ``data_download_2025*.sh``)
and the challenge pages (2026: ``RELEASES[2026]`` says which facts come from where). The records publish
an MD5 checksum and a size for every file through Zenodo's records API; :mod:`asdkit.data.download`
reads them from there at download time, so nothing here can go stale. An entry's own ``md5``/``size``
(none so far) would win over the API's.

Each archive unpacks ``<machine>/<split folder>/...``; development archives go to
``dcase<YEAR>/dev_data``, additional-training and evaluation archives to ``dcase<YEAR>/eval_data``, so the
two halves of an evaluation set meet in one tree that ``asdkit scan`` reads as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

DEV = "dev"
ADDITIONAL = "additional"
EVAL = "eval"
SPLITS = (DEV, ADDITIONAL, EVAL)

#: Default server; ``ASDKIT_DOWNLOAD_URL`` (or ``base_url=``) points the downloader elsewhere (a mirror,
#: the tests' local server).
ZENODO = "https://zenodo.org"


@dataclass(frozen=True)
class Archive:
    """One downloadable zip of one machine type."""

    dataset: str  # "dcase2020" ... "dcase2026", "mimii"
    split: str
    machine: str
    record: str
    file: str
    dest: str  # folder under the download root the archive unpacks into
    md5: str | None = None
    size: int | None = None

    def url(self, base: str) -> str:
        return f"{base.rstrip('/')}/records/{self.record}/files/{self.file}"


@dataclass(frozen=True)
class _Release:
    """One year: its machine types and, per split, the Zenodo record and the archive-name pattern."""

    dev_machines: tuple[str, ...]
    eval_machines: tuple[str, ...]
    records: dict[str, tuple[str, str]]  # split -> (record id, file-name pattern with {m})
    file_overrides: dict[tuple[str, str], str] | None = None  # (split, machine) -> file name


_DEV_2020 = ("ToyCar", "ToyConveyor", "fan", "pump", "slider", "valve")
_DEV_2021 = ("fan", "gearbox", "pump", "slider", "ToyCar", "ToyTrain", "valve")
_DEV_2022 = ("bearing", "fan", "gearbox", "slider", "ToyCar", "ToyTrain", "valve")

RELEASES: dict[int, _Release] = {
    2020: _Release(
        _DEV_2020,
        _DEV_2020,
        {
            DEV: ("3678171", "dev_data_{m}.zip"),
            ADDITIONAL: ("3727685", "eval_data_train_{m}.zip"),
            EVAL: ("3841772", "eval_data_test_{m}.zip"),
        },
    ),
    2021: _Release(
        _DEV_2021,
        _DEV_2021,
        {
            DEV: ("4562016", "dev_data_{m}.zip"),
            ADDITIONAL: ("4660992", "eval_data_{m}_train.zip"),
            EVAL: ("4884786", "eval_data_{m}_test.zip"),
        },
    ),
    2022: _Release(
        _DEV_2022,
        _DEV_2022,
        {
            DEV: ("6355122", "dev_{m}.zip"),
            ADDITIONAL: ("6462969", "eval_data_{m}_train.zip"),
            EVAL: ("6586456", "eval_data_{m}_test.zip"),
        },
    ),
    2023: _Release(
        _DEV_2022,
        ("bandsaw", "grinder", "shaker", "ToyDrone", "ToyNscale", "ToyTank", "Vacuum"),
        {
            DEV: ("7882613", "dev_{m}.zip"),
            ADDITIONAL: ("7830345", "eval_data_{m}_train.zip"),
            EVAL: ("7860847", "eval_data_{m}_test.zip"),
        },
    ),
    2024: _Release(
        _DEV_2022,
        (
            "3DPrinter",
            "AirCompressor",
            "Scanner",
            "ToyCircuit",
            "HoveringDrone",
            "HairDryer",
            "ToothBrush",
            "RoboticArm",
            "BrushlessMotor",
        ),
        {
            DEV: ("10902294", "dev_{m}.zip"),
            # 11259435 replaced 11183284: two machine types were re-released as *_train_r2.zip
            ADDITIONAL: ("11259435", "eval_data_{m}_train.zip"),
            EVAL: ("11363076", "eval_data_{m}_test.zip"),
        },
        {
            (ADDITIONAL, "3DPrinter"): "eval_data_3DPrinter_train_r2.zip",
            (ADDITIONAL, "RoboticArm"): "eval_data_RoboticArm_train_r2.zip",
        },
    ),
    2025: _Release(
        ("ToyCar", "ToyTrain", "bearing", "fan", "gearbox", "slider", "valve"),
        (
            "AutoTrash",
            "HomeCamera",
            "ToyPet",
            "ToyRCCar",
            "BandSealer",
            "CoffeeGrinder",
            "Polisher",
            "ScrewFeeder",
        ),
        {
            DEV: ("15097779", "dev_{m}.zip"),
            ADDITIONAL: ("15392814", "eval_data_{m}_train.zip"),
            EVAL: ("15519362", "eval_data_{m}_test.zip"),
        },
    ),
    # DCASE2026 (two channels: 0 near the machine, 1 farther away with stronger environmental noise).
    # From the organisers' repository nttcslab/dcase2023_task2_baseline_ae (snapshot of 2026-05-18):
    # the development record and its archives (data_download_2026dev.sh; dev_ToyCar.zip was replaced by
    # dev_ToyCar_r2.zip on 2026-04-09, and their loader still reads its tree as ToyCar/), the additional
    # training record and archives (data_download_2026add.sh) and the machine types and their section
    # 00 (datasets/machine_type_2026_{dev,eval}.yaml). Not in that snapshot, where the evaluation set is
    # still announced: the evaluation record 20437238 and its eval_data_<m>_test.zip names, taken from
    # participants' download scripts that follow the earlier years' pattern. Sizes and MD5s come from the
    # records' API at download time, as for every year.
    2026: _Release(
        ("ToyCar", "ToyCarEmu", "bearingEmu", "fan", "gearboxEmu", "sliderEmu", "valveEmu"),
        ("ToyDrone", "ToothBrush", "SewingMachine", "BlowerDustCollector", "Sander"),
        {
            DEV: ("19336329", "dev_{m}.zip"),
            ADDITIONAL: ("20151556", "eval_data_{m}_train.zip"),
            EVAL: ("20437238", "eval_data_{m}_test.zip"),
        },
        {(DEV, "ToyCar"): "dev_ToyCar_r2.zip"},
    ),
}

#: MIMII (Purohit et al. 2019, CC BY-SA 4.0): one zip per SNR and machine type, the raw 8-channel tree
#: ``<machine>/id_XX/{normal,abnormal}``; unpacked into ``mimii/<snr>_dB_<machine>/``.
MIMII_RECORD = "3384388"
MIMII_MACHINES = ("fan", "pump", "slider", "valve")
MIMII_SNRS = ("-6", "0", "6")

DATASETS = (*(str(y) for y in RELEASES), "mimii")


def archives(dataset: str, split: str | None = None, machines: list[str] | None = None) -> list[Archive]:
    """The archives of ``dataset`` ("2020".."2026" or "mimii"), optionally one split and some machines.

    ``split`` None means all three splits; an unknown dataset, split or machine is a ``ValueError`` whose
    message lists what exists.
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    found = _mimii() if dataset == "mimii" else _dcase(dataset)
    if split is not None:
        found = [a for a in found if a.split == split]
    if machines:
        known = sorted({a.machine for a in found}, key=str.lower)
        unknown = [m for m in machines if m not in known]
        if unknown:
            raise ValueError(
                f"machine type {unknown[0]!r} is not in {dataset} {split or ''}: {', '.join(known)}"
            )
        found = [a for a in found if a.machine in machines]
    return found


def _dcase(dataset: str) -> list[Archive]:
    year = int(dataset) if dataset.isdigit() else 0
    if year not in RELEASES:
        raise ValueError(f"dataset {dataset!r}: expected one of {', '.join(DATASETS)}")
    release = RELEASES[year]
    name = f"dcase{year}"
    found = []
    for split, (record, pattern) in release.records.items():
        machines = release.dev_machines if split == DEV else release.eval_machines
        dest = f"{name}/dev_data" if split == DEV else f"{name}/eval_data"
        for m in machines:
            file = (release.file_overrides or {}).get((split, m), pattern.format(m=m))
            found.append(Archive(name, split, m, record, file, dest))
    return found


def _mimii() -> list[Archive]:
    return [
        Archive("mimii", DEV, m, MIMII_RECORD, f"{snr}_dB_{m}.zip", f"mimii/{snr}_dB_{m}")
        for snr in MIMII_SNRS
        for m in MIMII_MACHINES
    ]
