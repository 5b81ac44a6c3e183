"""Every measured number in README.md names the command that reproduces it (issue 26).

The README is cut into blocks: a paragraph or list (lines up to a blank line), a table, a fenced code block,
a heading. A prose or table block that holds a **measured number** must **name a command**.

A measured number, read outside code blocks and ``code spans`` (which hold commands, parameters and names):
- a decimal, alone or with a spread or a unit (``0.716``, ``0.091 +- 0.040``, ``22.1``, ``1.5x``);
- scientific notation with a fraction (``1.31e-05``); a bare power of ten (``1e-9``) is a tolerance or a
  setting;
- an integer with a size unit (``190 kB``, ``360 MB``, ``15 MiB``) or a speed-up (``5x``, ``30 times as``);
- a duration after "took", "takes", "costs", "about" or "~" (``took 1,502 s``, ``about 25 minutes``).
Not measured, by rule: versions (after Python, torch, MLflow, opset, version; or ``1.2.3``), frequencies
(``Hz``, ``kHz``: sample rates, bin spacing), limits and targets (after "target", "within", "at most",
"at least", "up to", "<", ">"), and the phrases of :data:`NOT_MEASURED`, each with its reason.

Naming a command: a ``benchmarks/<name>.py`` path that exists, or ``asdkit <command>`` / ``make <target>``
with a real command or target, in the block itself, in a table's caption (the prose block directly above or
below it) or in a "Reproduce:" line directly above or below. A code block or heading directly above or below
covers a block only when it names a benchmark script or a make target: an example of ``asdkit`` usage beside
a number is not the command that measured it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"

#: Prose numbers that are settings or arithmetic, not measurements: (phrase as it reads, whitespace
#: collapsed, why). Each must still be in the README: a stale entry fails.
NOT_MEASURED: list[tuple[str, str]] = [
    ("300 s or 28.8 million samples", "a limit asdkit sets on decoded audio"),
    ("gives 1:0.1", "a VAE weighting a user writes"),
    ("(Beta(0.2, 0.2))", "the mixup distribution of the `mixup=0.2` setting"),
    ("MobileNetV2 at width 0.5", "the network's width setting"),
    ("MobileNetV2, width 0.5", "the network's width setting"),
    ("defaults 0.5, 0.1 = at most 10 dB", "the noise-aware front end's settings"),
    ("`[768, 62]` in the feature cache (190 kB)", "arithmetic: 768 x 62 float32 values"),
    ("(BEATs base: about 360 MB)", "arithmetic: 90.3 M float32 parameters"),
    ("BEATs base (90.3 M parameters)", "a count of the network's parameters, fixed by its architecture"),
    ("peak 1 against Slaney's area-normalised 0.043", "the filterbanks' definitions, not a measurement"),
    (
        "(issue 23: fan 0.747 against `patch_bank` mean 0.571 and the previous default 0.648; valve 0.538 "
        "against `mahalanobis` 0.520 and the previous default 0.521)",
        "issue 23's held-back numbers, quoted: the sets are not available here",
    ),
]

_CODE_SPAN = re.compile(r"`[^`]*`")
_LINK_TARGET = re.compile(r"\]\([^)]*\)")
_NUMBER = re.compile(
    r"(?<![\w./])(?:"
    r"\d+\.\d+e[-+]?\d+"  # 1.31e-05
    r"|\d+\.\d+x?"  # 0.716, 1.5x
    r"|\d[\d,]*\s?(?:kB|MB|MiB|GB)\b"  # 190 kB
    r"|\d+x\b"  # 5x
    r")"
)
_DURATION = re.compile(
    r"\b(?:took|takes|take|costs?|about|~)\s*~?\s*\d[\d,]*(?:-\d[\d,]*)?\s?(?:s|ms|min|minutes|seconds|hours)\b"
)
_TIMES = re.compile(r"\b\d+(?:\.\d+)? times (?:as|more|less|faster|slower|longer)\b")
_NOT_BEFORE = re.compile(
    r"(?:Python|torch|MLflow|opset|version|target|within|at most|at least|up to|[<>]=?)\s*$"
)
_FREQUENCY_AFTER = re.compile(r"^(?:/[\d.]+)?\s?k?Hz")
_BENCHMARK = re.compile(r"benchmarks/(\w+)\.py")
_ASDKIT = re.compile(r"\basdkit ([a-z][a-z-]*)")
_MAKE = re.compile(r"\bmake ([a-z]+)\b")
_REPRODUCE = re.compile(r"^\s*(?:\*\*)?(?:Reproduce|Run|Measured with)\b")


@dataclass
class Block:
    kind: str  # "prose", "table", "code" or "heading"
    line: int  # first line, 1-based
    text: str
    headings: tuple[str, ...]  # the headings it sits under, outermost first


def blocks(text: str) -> list[Block]:
    found: list[Block] = []
    lines = text.splitlines()
    headings: list[str] = []
    current: Block | None = None

    def flush() -> None:
        nonlocal current
        if current is not None:
            found.append(current)
            current = None

    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            flush()
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines) - 1)
            found.append(Block("code", i + 1, "\n".join(lines[i : end + 1]), tuple(headings)))
            i = end + 1
            continue
        if line.startswith("#") and not line.startswith("#!"):
            flush()
            level = len(line) - len(line.lstrip("#"))
            headings = [*headings[: level - 1], line.lstrip("#").strip()]
            found.append(Block("heading", i + 1, line, tuple(headings)))
        elif not line.strip():
            flush()
        else:
            kind = "table" if line.lstrip().startswith("|") else "prose"
            if current is not None and current.kind != kind:
                flush()
            if current is None:
                current = Block(kind, i + 1, line, tuple(headings))
            else:
                current.text += "\n" + line
        i += 1
    flush()
    return found


def _without_not_measured(text: str) -> str:
    flat = " ".join(text.split())
    for phrase, _ in NOT_MEASURED:
        flat = flat.replace(phrase, " ")
    return flat


def measured_numbers(text: str) -> list[str]:
    """The measured numbers of a prose or table block, by the rule in this module's docstring."""
    flat = _LINK_TARGET.sub("]", _CODE_SPAN.sub("``", _without_not_measured(text)))
    numbers = []
    for match in _NUMBER.finditer(flat):
        before, after = flat[max(0, match.start() - 12) : match.start()], flat[match.end() :]
        if after.startswith(".") and after[1:2].isdigit():  # 2.13.0: a version
            continue
        if _NOT_BEFORE.search(before) or _FREQUENCY_AFTER.match(after):
            continue
        numbers.append(match.group(0))
    return numbers + [m.group(0) for pattern in (_DURATION, _TIMES) for m in pattern.finditer(flat)]


def _cli_commands() -> set[str]:
    import typer

    from asdkit.cli.main import app

    group = typer.main.get_command(app)
    return set(group.commands)  # type: ignore[attr-defined]


def _make_targets() -> set[str]:
    return set(re.findall(r"^([a-z]+):", (REPO / "Makefile").read_text(), flags=re.M))


def named_commands(text: str, commands: set[str], targets: set[str]) -> list[str]:
    """The commands a block names: benchmark scripts that exist, real asdkit commands and make targets."""
    scripts = [f"benchmarks/{m}.py" for m in _BENCHMARK.findall(text)]
    found = [script for script in scripts if (REPO / script).is_file()]
    found += [f"asdkit {m}" for m in _ASDKIT.findall(text) if m in commands]
    found += [f"make {m}" for m in _MAKE.findall(text) if m in targets]
    return found


def _names(block: Block, commands: set[str], targets: set[str]) -> bool:
    return bool(named_commands(block.text, commands, targets))


def gaps(text: str, commands: set[str], targets: set[str]) -> list[tuple[Block, list[str]]]:
    """Prose and table blocks with measured numbers that name no command, with those numbers."""
    all_blocks = blocks(text)
    missing = []
    for k, block in enumerate(all_blocks):
        if block.kind not in ("prose", "table"):
            continue
        numbers = measured_numbers(block.text)
        if not numbers or _names(block, commands, targets):
            continue
        neighbours = [all_blocks[j] for j in (k - 1, k + 1) if 0 <= j < len(all_blocks)]
        covered = any(
            (n.kind in ("code", "heading") and _names(n, set(), targets))
            or (n.kind == "prose" and block.kind == "table" and _names(n, commands, targets))
            or (n.kind == "prose" and _REPRODUCE.match(n.text) is not None and _names(n, commands, targets))
            for n in neighbours
        )
        if not covered:
            missing.append((block, numbers))
    return missing


def _describe(found: list[tuple[Block, list[str]]]) -> str:
    return "\n".join(
        f"README.md:{b.line} ({' > '.join(b.headings[-2:])}): {', '.join(n[:6])}" for b, n in found
    )


@pytest.fixture(scope="module")
def cli_names() -> tuple[set[str], set[str]]:
    return _cli_commands(), _make_targets()


def test_every_measured_number_names_its_command(cli_names: tuple[set[str], set[str]]) -> None:
    found = gaps(README.read_text(), *cli_names)
    assert not found, "README numbers without the command that reproduces them:\n" + _describe(found)


def test_not_measured_phrases_are_in_the_readme() -> None:
    flat = " ".join(README.read_text().split())
    stale = [phrase for phrase, _ in NOT_MEASURED if phrase not in flat]
    assert not stale, f"NOT_MEASURED phrases no longer in README.md: {stale}"


# --- the rule itself, on planted text ------------------------------------------------------------------

COMMANDS = {"run", "compare"}
TARGETS = {"bench"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The default scored 0.716 +- 0.003 on fold 0.", ["0.716", "0.003"]),
        ("asdkit is 1.51x faster and its file is 18 MB.", ["1.51x", "18 MB"]),
        ("| detector | ms/clip |\n|---|---:|\n| `knn` | 13.8 |", ["13.8"]),
        ("max abs difference 1.31e-05, within 1e-4 of the reference", ["1.31e-05"]),
        ("the evidence took 1,502 s of wall time", ["took 1,502 s"]),
        ("2 threads took 30 times as long as 1", ["30 times as"]),
        ("a gap of -0.255 and a 1.4-2.2x speed-up", ["0.255", "1.4", "2.2x"]),
        ("Python 3.11, torch 2.13.0 and opset 17.5 at 44.1 kHz", []),
        ("(target 4.5 GB: met), at most 0.05 of spread", []),
        ("`--param fraction=0.1` and `knn:k=3`", []),
        ("resampled 16 -> 44.1/48 -> 16 kHz", []),
    ],
)
def test_measured_numbers_rule(text: str, expected: list[str]) -> None:
    assert measured_numbers(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "It scored 0.716 +- 0.003 (`python benchmarks/bench_onnx.py`).",
        "It scored 0.716 +- 0.003.\n\n```bash\npython benchmarks/bench_onnx.py\n```\n",
        "It scored 0.716 +- 0.003.\n\nReproduce: `python benchmarks/bench_onnx.py --seeds 0-4`\n",
        "`asdkit compare runs/a runs/b` prints 0.716 +- 0.003.",
        "Run `make bench`: 12.5 clips/s.",
        "### Speed (`benchmarks/bench_onnx.py`)\n\n| a | b |\n|---|---|\n| x | 1.5 |\n",
    ],
)
def test_a_named_command_covers_a_number(text: str) -> None:
    assert gaps(text, COMMANDS, TARGETS) == []


def test_a_number_without_a_command_fails() -> None:
    text = "# T\n\nSome prose.\n\nIt scored 0.716 +- 0.003, and took 35 s.\n\n"
    text += "| a | b |\n|---|---|\n| x | 1.5 |\n"
    found = {b.line: n for b, n in gaps(text, COMMANDS, TARGETS)}
    assert found == {5: ["0.716", "0.003", "took 35 s"], 7: ["1.5"]}


def test_a_missing_script_or_a_bogus_command_names_nothing() -> None:
    text = "It scored 0.716 (`python benchmarks/no_such_bench.py`, `asdkit frobnicate`, `make nothing`)."
    assert [b.line for b, _ in gaps(text, COMMANDS, TARGETS)] == [1]
    assert gaps(text.replace("no_such_bench", "bench_onnx"), COMMANDS, TARGETS) == []


def test_a_usage_example_beside_a_number_is_not_its_command() -> None:
    text = "```bash\nasdkit run --data d --out r\n```\n\nIt scored 0.716 +- 0.003.\n"
    assert [b.line for b, _ in gaps(text, COMMANDS, TARGETS)] == [5]


def test_a_neighbouring_paragraph_covers_a_table_but_not_prose() -> None:
    caption = "The table comes from `python benchmarks/bench_onnx.py`:"
    table = "| a | b |\n|---|---|\n| x | 1.5 |"
    assert gaps(f"{caption}\n\n{table}\n", COMMANDS, TARGETS) == []
    prose = "Another claim: 0.93 on fold 1."
    assert [b.line for b, _ in gaps(f"{caption}\n\n{prose}\n", COMMANDS, TARGETS)] == [3]


# --- the named benchmark commands run as written ------------------------------------------------------

_SCRIPT_CALL = re.compile(r"python (benchmarks/\w+\.py)((?:\s+(?!python\b|#)[^\s`]+)*)")


def benchmark_calls(text: str) -> list[tuple[str, list[str]]]:
    """Each ``python benchmarks/X.py ...`` of the README (prose, code spans, code blocks) with its options."""
    flat = " ".join(text.replace("\\\n", " ").split())
    return [(script, re.findall(r"(?<!\S)(--[\w-]+)", args)) for script, args in _SCRIPT_CALL.findall(flat)]


def wrong_calls(text: str) -> list[str]:
    """Named benchmark scripts that do not exist, and options their argument parsers do not define."""
    wrong = []
    for script, options in benchmark_calls(text):
        path = REPO / script
        if not path.is_file():
            wrong.append(f"{script}: no such script")
            continue
        defined = set(re.findall(r"add_argument\(\s*\"(--[\w-]+)\"", path.read_text())) | {"--help"}
        wrong += [f"{script}: no option {option}" for option in options if option not in defined]
    return wrong


def test_every_named_benchmark_exists_and_takes_the_options_given() -> None:
    text = README.read_text()
    assert ("benchmarks/bench_resample.py", []) in benchmark_calls(text)  # the calls are read at all
    assert not wrong_calls(text)


def test_a_wrong_benchmark_call_is_found() -> None:
    text = "Run `python benchmarks/bench_jobs.py --models ae\\\n  --bogus 5` and\n\n"
    text += "```\npython benchmarks/no_such.py  # --not-an-option\n```\n"
    assert benchmark_calls(text) == [
        ("benchmarks/bench_jobs.py", ["--models", "--bogus"]),
        ("benchmarks/no_such.py", []),
    ]
    assert wrong_calls(text) == [
        "benchmarks/bench_jobs.py: no option --bogus",
        "benchmarks/no_such.py: no such script",
    ]
