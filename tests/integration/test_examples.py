"""Every ``asdkit`` line of the README and of every command's ``--help`` runs as written, on tiny trees.

The lines are parsed from README.md (its ``bash`` blocks) and from the help text of every command and
subcommand, so a new example is covered without touching this file. Each runs through the real entry point
(``asdkit.cli.main.main``) in one sandbox folder holding what the examples name (``dev_data``, ``my_pump``,
``new_clip.wav``, ``runs/...``), in the order they are found; a run that an example reads before any
example writes it (``runs/idnn``, ``runs/knn``) is trained first by :data:`PRODUCERS`. ``run``, ``train``
and ``demo`` get ``--debug`` (the README's "same pipeline in seconds": few clips, short training, parameters
given as written still win) and ``--no-plots``, so the whole list takes seconds per line, not hours.

Lines that cannot run here are listed in :data:`NOT_RUN` with the reason; everything else must exit 0 with no
``error:`` line.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from asdkit.cli.main import app, main
from asdkit.data.synthetic import SyntheticSpec, generate
from asdkit.models.encoders.ast import AstEncoder
from asdkit.models.encoders.beats import Beats, BeatsConfig
from tests.helpers.served import write_wav
from tests.helpers.trees import make_tree

#: About 20 s of CPU per line (each trains or reads a run): minutes in all, so the project's CI (.ci/run) runs
#: them and a quick local ``make test`` skips them unless asked.
RUN_EXAMPLES_VARIABLE = "ASDKIT_RUN_EXAMPLES"
pytestmark = pytest.mark.slow
examples_asked = pytest.mark.skipif(
    os.environ.get(RUN_EXAMPLES_VARIABLE, "") in ("", "0"),
    reason=f"the README and --help examples run with {RUN_EXAMPLES_VARIABLE}=1 (set by .ci/run)",
)

README = Path(__file__).resolve().parents[2] / "README.md"

#: A two-microphone development tree for the DCASE2026 lines (one machine type: each line trains in seconds).
DCASE2026_SPEC = SyntheticSpec.tiny(machines=("fan",), sections=1, duration=1.5)

#: (pattern searched in the line, why it is not run here)
NOT_RUN: list[tuple[str, str]] = [
    (r"^asdkit download (?!.*--dry-run)", "downloads the DCASE data from Zenodo (network)"),
    (r"^asdkit download .*--dry-run", "reads the Zenodo records (network)"),
    (r"data/dcase2023/|data/dcase2024/", "needs a downloaded DCASE2023 data set"),
    (r"^asdkit submit ", "needs the runs of a real DCASE evaluation set (its official eval list)"),
    (
        r"^(ASDKIT_TOKEN=\S+ )?asdkit serve ",
        "serves until stopped (test_serve_cli.py starts one on loopback)",
    ),
    (r"^asdkit dashboard (?!.*--print)", "runs mlflow ui until stopped"),
    (r"^asdkit watch (?!.*--once)", "polls the folder until Ctrl-C (the --once lines run)"),
    (r"devices=4|strategy=ddp", "needs 4 GPUs"),
    (r"precision=16-mixed", "needs a GPU"),
    (r"mlflow\.lan", "needs a tracking server on the network"),
    (r"&& tensorboard ", "starts TensorBoard, another program"),
    (
        r"^asdkit demo$",
        "the full demo set: minutes (asdkit demo --debug runs, here and in test_default_end_to_end)",
    ),
    (r"--data mimii/", "needs raw MIMII recordings (8 channels; test_layouts reads ../shared's sample)"),
    (r"task2_evaluator", "needs the organisers' evaluator of that year (test_ground_truth_forms reads them)"),
    (r"data/dcase2026/eval_data", "needs the DCASE2026 evaluation set (its ground truth is not published)"),
    (
        r"^asdkit dashboard .*--print",
        "needs runs tracked in MLflow, which the test session turns off (test_tracking.py runs it on one)",
    ),
    (r"--resume", "needs an interrupted run (test_faults_run.py interrupts one and resumes it)"),
    (
        r"--model mobilenet_section",
        "MobileNetV2 trains for minutes even in --debug on 2 cores (test_detectors)",
    ),
]

#: Runs that examples read but no example writes before them: trained first (cheap settings, same tree).
PRODUCERS: dict[str, list[str]] = {
    "submission/": [
        "run",
        "--data",
        "eval_data",
        "--out",
        "submission",
        "--model",
        "knn",
        "--layout",
        "eval",
    ],
    "runs/idnn": ["run", "--data", "dev_data", "--out", "runs/idnn", "--model", "idnn"],
    "runs/knn": ["run", "--data", "dev_data", "--out", "runs/knn", "--model", "knn"],
    "runs/made": ["run", "--data", "dev_data", "--out", "runs/made", "--model", "made"],
    "runs/ae4": ["run", "--data", "dev_data", "--out", "runs/ae4", "--model", "ae", "--seeds", "0,1"],
    "runs/arcface4": [
        "run",
        "--data",
        "dev_data",
        "--out",
        "runs/arcface4",
        "--model",
        "arcface",
        "--seeds",
        "0,1",
    ],
}


def readme_examples(text: str) -> list[str]:
    """The lines of the README's bash blocks that call asdkit (continuation lines joined)."""
    lines: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = " ".join(re.sub(r"\s+#.*$", "", line).split())  # comment cut, spaces collapsed
            if re.match(r"^(\S+=\S+ )?asdkit ", line):
                lines.append(line)
    return lines


def help_examples() -> list[str]:
    """The ``asdkit ...`` lines under "Example(s):" in every command's help text."""
    import typer

    def walk(command: object) -> list[str]:
        if hasattr(command, "commands"):
            return [line for sub in command.commands.values() for line in walk(sub)]
        text = getattr(command, "help", None) or ""
        if "Example" not in text:
            return []
        tail = text.split("Example", 1)[1]
        return [line.strip() for line in tail.splitlines() if line.strip().startswith("asdkit ")]

    return walk(typer.main.get_command(app))


def _argv(line: str) -> tuple[list[str], str | None]:
    """The command line's arguments (after ``asdkit``, comments and prose in parentheses cut) and the file
    its stdout is redirected to, if any."""
    line = re.sub(r"\s+\(.*\)$", "", line)
    words = shlex.split(line, comments=True)
    words = [w for w in words if not re.match(r"^[A-Z_]+=", w)]
    redirect = None
    if ">" in words:
        redirect = words[words.index(">") + 1]
        words = words[: words.index(">")]
    assert words[0] == "asdkit", line
    return words[1:], redirect


def _not_run(line: str) -> str | None:
    return next((why for pattern, why in NOT_RUN if re.search(pattern, line)), None)


ALL = list(dict.fromkeys(readme_examples(README.read_text()) + help_examples()))
RUN = [line for line in ALL if _not_run(line) is None]


def test_the_examples_were_found():
    """The parsers see the README's and the help texts' lines (a broken parser would pass everything)."""
    assert len(readme_examples(README.read_text())) >= 40 and len(help_examples()) >= 40
    assert "asdkit detectors" in RUN and any(line.startswith("asdkit score ") for line in RUN)


def _sandbox(root: Path) -> Path:
    """The files and folders the examples name, tiny."""
    # dcase2020 names (the reconstruction view's example clip), sections 00 and 01 (--section 01)
    make_tree(
        root / "dev_data", "dcase2020", machines=("fan", "valve", "pump"), sections=("00", "01"), n_train=8
    )
    # 4 test clips per section: under --debug's cap of 6 a set, so a debug run scores every listed clip
    make_tree(root / "eval_data", "eval", year=2020, ground_truth=root / "ground_truth", n_test=1)
    for name in ("my_pump", "my_pump_recordings"):
        make_tree(root / name, "folder", machines=("pump",), single_machine=True, n_train=6)
    clips = sorted((root / "dev_data" / "fan" / "test").glob("*.wav"))[:2]
    # new recordings in folders named by machine type: `asdkit score RUN new_recordings/` picks the model
    for folder in ("new_recordings/fan", "new_recordings/pump", "fan_recordings", "incoming"):
        (root / folder).mkdir(parents=True)
        for clip in clips:
            shutil.copy(clip, root / folder / clip.name)
    for name in ("new_clip.wav", "clip.wav", "valve_clip.wav"):
        write_wav(root / name)
    shutil.copytree(root / "ground_truth", root / "ground_truth_data")
    # the pretrained encoders' files a user brings, with random tiny weights in the published formats
    beats = BeatsConfig.tiny()
    beats = replace(
        beats, encoder_layers=12
    )  # narrow, but as deep as the published ones: layers=6,9,12 exist
    torch.save(
        {"cfg": beats.to_published(), "model": Beats(beats).published_state()},
        root / "BEATs_iter3_plus_AS2M.pt",
    )
    AstEncoder.save_random_checkpoint(root / "ast")
    generate(root / "data" / "dcase2026" / "dev_data", layout="dcase2026", spec=DCASE2026_SPEC)
    return root


def _asdkit(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["asdkit", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def _quick(args: list[str], sandbox: Path) -> list[str]:
    """``--debug`` (and no figures) for the commands that train; absolute paths moved into the sandbox."""
    args = [str(sandbox / a.lstrip("/")) if a.startswith("/") else a for a in args]
    if args[0] in ("run", "train", "demo") and "--debug" not in args:
        args.append("--debug")
    if args[0] == "run":
        args.append("--no-plots")
    return args


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    return _sandbox(tmp_path_factory.mktemp("examples"))


@examples_asked
@pytest.mark.parametrize("line", RUN)
def test_example_runs_as_written(line, sandbox, monkeypatch, capsys):
    monkeypatch.chdir(sandbox)
    monkeypatch.setenv("ASDKIT_CACHE_DIR", str(sandbox / ".cache"))
    args, redirect = _argv(line)
    for path, producer in PRODUCERS.items():
        if path in args and not (sandbox / path).exists():
            code, _, err = _asdkit(_quick(producer, sandbox), monkeypatch, capsys)
            assert code == 0, f"producing {path}: {err}"
    if args[0] in ("run", "train") and "--out" in args and "--overwrite" not in args:
        out = sandbox / args[args.index("--out") + 1]
        if (out / "config.json").exists() or (out / "models").exists():
            shutil.rmtree(out)  # two examples write runs/ae: each runs as written into a fresh folder
    code, out, err = _asdkit(_quick(args, sandbox), monkeypatch, capsys)
    assert code == 0, f"{line}\n{err}"
    assert not [x for x in err.splitlines() if x.startswith("error:")], err
    if redirect is not None:
        (sandbox / redirect).write_text(out)
