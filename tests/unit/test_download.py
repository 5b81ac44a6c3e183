"""``asdkit download`` against a local Range-capable server: fetch, resume, checksum, unpack, scan."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from asdkit.data import download as dl
from asdkit.data.catalogue import archives
from asdkit.data.layouts import scan
from asdkit.errors import AsdkitError, DataError
from tests.helpers.range_server import ServerState, record_json, serve
from tests.helpers.trees import make_tree

RECORD = "7882613"  # DCASE2023 development set


@pytest.fixture(autouse=True)
def _no_wait(monkeypatch):
    monkeypatch.setattr(dl, "RETRY_WAIT", 0.0)


def _zips(tmp_path: Path, machines: tuple[str, ...]) -> dict[str, bytes]:
    """dev_<machine>.zip of a tiny 2022-style tree per machine, as the organisers pack them."""
    src = make_tree(tmp_path / "src", "dcase2022", machines=machines, n_train=2, n_test=1)
    out = {}
    for m in machines:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for f in sorted((src / m).rglob("*")):
                if f.is_file():
                    z.write(f, f.relative_to(src).as_posix())
        out[f"dev_{m}.zip"] = buf.getvalue()
    return out


def _state(zips: dict[str, bytes], md5s: dict[str, str] | None = None) -> ServerState:
    md5s = md5s or {k: hashlib.md5(v).hexdigest() for k, v in zips.items()}
    files = {f"/records/{RECORD}/files/{k}": v for k, v in zips.items()}
    files[f"/api/records/{RECORD}"] = record_json(zips, md5s)
    return ServerState(files)


def _selected(machines: list[str]) -> list:
    return archives("2023", "dev", machines)


def test_download_unpacks_a_tree_that_scan_reads(tmp_path):
    zips = _zips(tmp_path, ("fan", "valve"))
    state = _state(zips)
    root = tmp_path / "data"
    with serve(state) as base:
        got = dl.fetch_all(_selected(["fan", "valve"]), root, base=base, progress=False)
    assert [f.bytes_downloaded for f in got] == [len(zips["dev_fan.zip"]), len(zips["dev_valve.zip"])]
    manifest = scan(root / "dcase2023" / "dev_data")
    assert manifest.layout == "dcase2022"
    assert manifest.machines() == ["fan", "valve"]
    assert all(dl.is_complete(root, a) for a in _selected(["fan", "valve"]))
    assert not list((root / dl.STATE_DIR).glob("*.part"))  # archives removed once unpacked
    # a second call fetches nothing
    with serve(state) as base:
        again = dl.fetch_all(_selected(["fan", "valve"]), root, base=base, progress=False)
    assert all(f.skipped for f in again)


def test_cut_connection_resumes_with_a_range_request(tmp_path):
    zips = _zips(tmp_path, ("fan",))
    size = len(zips["dev_fan.zip"])
    state = _state(zips)
    state.cut_after, state.cuts_left = size // 3, 2
    root = tmp_path / "data"
    with serve(state) as base:
        got = dl.fetch_all(_selected(["fan"]), root, base=base, retries=3, progress=False)
    ranges = [r for p, r in state.requests if p.endswith("dev_fan.zip")]
    assert ranges == [None, f"bytes={size // 3}-", f"bytes={2 * (size // 3)}-"]
    assert got[0].bytes_downloaded == size  # every byte fetched once, none twice
    assert scan(root / "dcase2023" / "dev_data").machines() == ["fan"]


def test_interrupted_download_leaves_no_tree_and_the_next_call_resumes(tmp_path):
    zips = _zips(tmp_path, ("fan",))
    size = len(zips["dev_fan.zip"])
    state = _state(zips)
    state.cut_after, state.cuts_left = size // 2, 1
    root = tmp_path / "data"
    with serve(state) as base:
        with pytest.raises(DataError, match="run the command again to resume"):
            dl.fetch_all(_selected(["fan"]), root, base=base, retries=0, progress=False)
        assert not (root / "dcase2023").exists()
        assert (root / dl.STATE_DIR / "dev_fan.zip.part").stat().st_size == size // 2
        got = dl.fetch_all(_selected(["fan"]), root, base=base, retries=0, progress=False)
    assert got[0].resumed_from == size // 2 and got[0].bytes_downloaded == size - size // 2
    assert state.requests[-1] == (f"/records/{RECORD}/files/dev_fan.zip", f"bytes={size // 2}-")
    assert scan(root / "dcase2023" / "dev_data").machines() == ["fan"]


def test_checksum_mismatch_deletes_the_file_and_unpacks_nothing(tmp_path):
    zips = _zips(tmp_path, ("fan",))
    state = _state(zips, md5s={"dev_fan.zip": "0" * 32})
    root = tmp_path / "data"
    with serve(state) as base, pytest.raises(DataError, match="checksum mismatch"):
        dl.fetch_all(_selected(["fan"]), root, base=base, progress=False)
    assert not (root / "dcase2023").exists()
    assert not list((root / dl.STATE_DIR).glob("dev_fan.zip*"))


def test_without_the_records_api_sizes_are_checked(tmp_path, caplog):
    zips = _zips(tmp_path, ("fan",))
    state = _state(zips)
    del state.files[f"/api/records/{RECORD}"]
    root = tmp_path / "data"
    with serve(state) as base:
        dl.fetch_all(_selected(["fan"]), root, base=base, progress=False)
    assert "checking sizes only" in caplog.text
    assert scan(root / "dcase2023" / "dev_data").machines() == ["fan"]


def test_a_corrupt_zip_is_deleted_and_leaves_no_tree(tmp_path):
    zips = {"dev_fan.zip": b"not a zip at all" * 10}
    state = _state(zips)
    root = tmp_path / "data"
    with serve(state) as base, pytest.raises(DataError, match="not a valid zip"):
        dl.fetch_all(_selected(["fan"]), root, base=base, progress=False)
    assert not (root / "dcase2023").exists()
    assert not dl.is_complete(root, _selected(["fan"])[0])


def test_no_network_is_one_network_error(tmp_path):
    # port 9 on 127.0.0.1 (discard) refuses connections here: the same path as an unreachable host
    with pytest.raises(dl.NetworkError, match=r"cannot reach 127\.0\.0\.1:9"):
        dl.fetch_all(_selected(["fan"]), tmp_path, base="http://127.0.0.1:9", progress=False)


def test_catalogue_names_and_bad_selections():
    names = {a.file for a in archives("2024", "additional")}
    assert "eval_data_3DPrinter_train_r2.zip" in names and len(names) == 9
    assert {a.dest for a in archives("2021")} == {"dcase2021/dev_data", "dcase2021/eval_data"}
    assert archives("2020", "eval", ["fan"])[0].file == "eval_data_test_fan.zip"
    assert len(archives("mimii")) == 12
    with pytest.raises(AsdkitError, match="expected one of"):
        dl.select("2019", None, None)
    with pytest.raises(AsdkitError, match="'drill' is not in 2023 dev"):
        dl.select("2023", "dev", ["drill"])
    with pytest.raises(AsdkitError, match="mimii has no eval split"):
        dl.select("mimii", "eval", None)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asdkit", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_dry_run_prints_sizes_and_the_download_lands_where_scan_finds_it(tmp_path):
    zips = _zips(tmp_path, ("fan",))
    root = tmp_path / "data"
    with serve(_state(zips)) as base:
        dry = _cli(
            "download",
            "2023",
            "--split",
            "dev",
            "--machine",
            "fan",
            "--to",
            str(root),
            "--dry-run",
            "--base-url",
            base,
        )
        assert dry.returncode == 0, dry.stderr
        assert dl.size_text(len(zips["dev_fan.zip"])) in dry.stdout and "to fetch" in dry.stdout
        assert not root.exists()
        done = _cli(
            "download",
            "2023",
            "--split",
            "dev",
            "--machine",
            "fan",
            "--to",
            str(root),
            "-q",
            "--base-url",
            base,
        )
    assert done.returncode == 0, done.stderr
    assert "1 archive(s) fetched" in done.stdout
    scanned = _cli("scan", str(root / "dcase2023" / "dev_data"))
    assert "dcase2022" in scanned.stdout and "fan" in scanned.stdout


def test_cli_without_network_says_so_in_one_line(tmp_path):
    res = _cli(
        "download", "2023", "--split", "dev", "--to", str(tmp_path), "--base-url", "http://127.0.0.1:9"
    )
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and res.stderr.startswith("error: cannot reach 127.0.0.1:9")


def _zip_of(src: Path, parts: list[str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for part in parts:
            path = src / part
            for f in sorted(path.rglob("*")) if path.is_dir() else [path]:
                if f.is_file():
                    z.write(f, f.relative_to(src).as_posix())
    return buf.getvalue()


def test_eval_training_and_test_archives_merge_into_one_eval_tree(tmp_path):
    src = make_tree(tmp_path / "src", "eval", machines=("bandsaw",), year=2022, sections=("00",))
    (src / "bandsaw" / "attributes_00.csv").write_text("file_name,d1p,d1v\n")
    train = _zip_of(src, ["bandsaw/train", "bandsaw/attributes_00.csv"])
    test = _zip_of(src, ["bandsaw/test", "bandsaw/attributes_00.csv"])
    md5 = {"a": hashlib.md5(train).hexdigest(), "b": hashlib.md5(test).hexdigest()}
    files = {
        "/records/7830345/files/eval_data_bandsaw_train.zip": train,
        "/records/7860847/files/eval_data_bandsaw_test.zip": test,
        "/api/records/7830345": record_json(
            {"eval_data_bandsaw_train.zip": train}, {"eval_data_bandsaw_train.zip": md5["a"]}
        ),
        "/api/records/7860847": record_json(
            {"eval_data_bandsaw_test.zip": test}, {"eval_data_bandsaw_test.zip": md5["b"]}
        ),
    }
    root = tmp_path / "data"
    with serve(ServerState(files)) as base:
        dl.fetch_all(archives("2023", "additional", ["bandsaw"]), root, base=base, progress=False)
        dl.fetch_all(archives("2023", "eval", ["bandsaw"]), root, base=base, progress=False)
    manifest = scan(root / "dcase2023" / "eval_data")
    assert manifest.layout == "eval" and manifest.machines() == ["bandsaw"]
    assert {c.split for c in manifest} == {"train", "test"}
    # an archive that would overwrite a different file is refused, and leaves the tree as it was
    (root / "dcase2023" / "eval_data" / "bandsaw" / "attributes_00.csv").write_text("changed\n")
    (root / dl.STATE_DIR / "eval_data_bandsaw_test.zip.done").unlink()
    shutil.rmtree(root / "dcase2023" / "eval_data" / "bandsaw" / "test")
    with (
        serve(ServerState(files)) as base,
        pytest.raises(DataError, match=r"attributes_00\.csv: already exists"),
    ):
        dl.fetch_all(archives("2023", "eval", ["bandsaw"]), root, base=base, progress=False)
    assert not (root / "dcase2023" / "eval_data" / "bandsaw" / "test").exists()
    assert not list((root / dl.STATE_DIR).glob("*.staging"))


def test_a_complete_part_file_of_unknown_size_is_unpacked_not_refetched(tmp_path):
    zips = _zips(tmp_path, ("fan",))
    state = _state(zips)
    del state.files[f"/api/records/{RECORD}"]  # no published size: the Range request runs past the end
    root = tmp_path / "data"
    (root / dl.STATE_DIR).mkdir(parents=True)
    (root / dl.STATE_DIR / "dev_fan.zip.part").write_bytes(zips["dev_fan.zip"])
    with serve(state) as base:
        got = dl.fetch_all(_selected(["fan"]), root, base=base, progress=False)
    assert got[0].bytes_downloaded == 0
    assert scan(root / "dcase2023" / "dev_data").machines() == ["fan"]
