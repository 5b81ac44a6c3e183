"""With ``select=evidence`` the default ensemble chooses its detector per machine type on label-free evidence,
and says so everywhere a user looks: the run's output, config.json, each model.json and the HTML report."""

from __future__ import annotations

import json

from asdkit import api
from asdkit.data.synthetic import SyntheticSpec, generate
from asdkit.detectors.base import Detector
from asdkit.detectors.ensemble import DEFAULT_CANDIDATES
from asdkit.reports.html import write_report


def test_evidence_selection_records_its_choice_and_evidence(tmp_path):
    data = generate(tmp_path / "data", layout="dcase2022", spec=SyntheticSpec.tiny(machines=("pump", "fan")))
    said: list[str] = []
    result = api.run(
        data,
        tmp_path / "run",
        params={"select": "evidence"},
        cache_dir=tmp_path / "cache",
        plots=False,
        progress=said.append,
    )
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["model"] == "ensemble" and config["params"]["select"] == "evidence"
    assert sorted(config["selection"]) == ["fan", "pump"]
    for machine, record in config["selection"].items():
        assert len(record["candidates"]) == len(DEFAULT_CANDIDATES)
        assert "machine_mix" in record["transforms"]  # the other machine type's clips were given
        (chosen,) = record["chosen"]
        assert any(f"{machine}: chose {chosen}" in line for line in said)
        model = Detector.load(result.run_dir / "models" / machine)
        assert model.selection_ == record and len(model.members_) == 1
    page = write_report(result.run_dir).read_text()
    assert 'id="selection"' in page and "label-free evidence" in page
