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


def test_loading_and_scoring_never_import_lightning():
    code = (
        "import sys\n"
        "from asdkit.detectors.registry import available_detectors\n"
        "import asdkit.api, asdkit.features.cache\n"
        "available_detectors()\n"
        "assert not [m for m in sys.modules if m.startswith(('lightning', 'pytorch_lightning'))]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
