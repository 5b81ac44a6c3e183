from __future__ import annotations

import subprocess
import sys

import pytest

from asdkit.detectors.base import Detector
from asdkit.detectors.registry import available_detectors, get_detector_class


@pytest.mark.parametrize("name", available_detectors())
def test_every_registered_detector_follows_the_contract(name):
    cls = get_detector_class(name)
    assert issubclass(cls, Detector) and cls.name == name
    detector = cls()
    params = detector.get_params()
    assert all(not k.endswith("_") for k in params)
    assert not [a for a in vars(detector) if a.endswith("_")], "__init__ must not set learned state"
    assert cls(**params).get_params() == params


def test_loading_and_scoring_never_import_lightning(tmp_path):
    """A saved network model and a saved default-detector model are loaded and score a clip in a fresh
    process (as ``asdkit score``, the service and the watcher do) without Lightning being imported."""
    from asdkit import api
    from asdkit.detectors.registry import DEFAULT_DETECTOR
    from tests.helpers.served import save_run, write_wav
    from tests.helpers.trees import make_tree

    network_run = save_run(tmp_path / "ae", {"fan": 100.0})
    tree = make_tree(tmp_path / "data", "dcase2022", machines=("fan",), n_train=4, n_test=1)
    api.train(tree, tmp_path / "default", model=DEFAULT_DETECTOR, cache_dir=tmp_path / "cache")
    clip = write_wav(tmp_path / "clip.wav")
    code = (
        "import sys\n"
        "from asdkit import api\n"
        "import asdkit.service.app, asdkit.service.watch\n"
        "for run in sys.argv[1:3]:\n"
        "    scored, skipped = api.score(run, [sys.argv[3]])\n"
        "    assert len(scored) == 1 and not skipped, (run, skipped)\n"
        "loaded = [m for m in sys.modules if m.startswith(('lightning', 'pytorch_lightning'))]\n"
        "assert not loaded, loaded[:5]\n"
        "print('scored without lightning')\n"
    )
    args = [str(network_run), str(tmp_path / "default"), str(clip)]
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "scored without lightning" in proc.stdout, proc.stderr
