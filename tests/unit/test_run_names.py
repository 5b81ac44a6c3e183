"""One module names a run directory's files, and the API does not import the demo built on it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from asdkit import rundir

SOURCE = Path(rundir.__file__).parent
#: File names only a run directory (or a model folder in it) has: no other meaning to mistake them for.
RUN_FILE_NAMES = {
    rundir.CONFIG_FILE,
    rundir.MANIFEST_FILE,
    rundir.RESULT_FILE,
    rundir.REPORT_FILE,
    rundir.SEEDS_JSON,
    rundir.SEEDS_CSV,
    rundir.MODEL_FILE,
    rundir.WEIGHTS_FILE,
    rundir.ARRAYS_FILE,
    rundir.LOCK_NAME,
}
#: The feature cache keeps its own settings in a config.json of its folder, and a transformers model
#: directory (save_pretrained) has one too; neither is a run directory.
ELSEWHERE = {("features/cache.py", rundir.CONFIG_FILE), ("models/encoders/ast.py", rundir.CONFIG_FILE)}


def test_no_module_but_rundir_spells_a_run_file_name():
    spelled = []
    for path in sorted(SOURCE.rglob("*.py")):
        name = path.relative_to(SOURCE).as_posix()
        if name == "rundir.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            found = isinstance(node, ast.Constant) and node.value in RUN_FILE_NAMES
            if found and (name, node.value) not in ELSEWHERE:
                spelled.append(f"{name}:{node.lineno} {node.value}")
    assert spelled == []


def test_the_api_does_not_import_the_demo():
    code = "import sys, asdkit.api\nassert 'asdkit.demo' not in sys.modules, 'api imports demo'\n"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    demo_imports = [
        node.module
        for node in ast.walk(ast.parse((SOURCE / "api.py").read_text()))
        if isinstance(node, ast.ImportFrom)
    ]
    assert "asdkit.demo" not in demo_imports
