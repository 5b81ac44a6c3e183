"""``asdkit download`` against a local server: a full download, and one cut mid-way then resumed.

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_download.py [--mb 64]``. A zip of random bytes (the
size of a small DCASE archive) is served from 127.0.0.1 by the tests' Range-capable server; the cut
connection drops after 40% of the file. The table gives the bytes each call fetched and its wall
clock (MD5 check and unzip included), so "resume" shows that no byte was fetched twice.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' local server
from _table import print_table

from asdkit.data import download as dl
from asdkit.data.catalogue import archives
from asdkit.errors import DataError
from tests.helpers.range_server import ServerState, record_json, serve

RECORD = "7882613"


def _zip(mb: int) -> bytes:
    buf = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, mb << 20, dtype=np.uint8).tobytes()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("fan/train/section_00_source_train_normal_0000_a.wav", noise)
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=64, help="archive size in MiB")
    args = parser.parse_args()
    body = _zip(args.mb)
    files = {f"/records/{RECORD}/files/dev_fan.zip": body}
    files[f"/api/records/{RECORD}"] = record_json(
        {"dev_fan.zip": body}, {"dev_fan.zip": hashlib.md5(body).hexdigest()}
    )
    selected = archives("2023", "dev", ["fan"])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        state = ServerState(dict(files))
        with serve(state) as base:
            t = time.perf_counter()
            got = dl.fetch_all(selected, Path(tmp) / "full", base=base, progress=False)
            rows.append(_row("full download", got[0].bytes_downloaded, time.perf_counter() - t, len(body)))

            state = ServerState(dict(files), cut_after=int(0.4 * len(body)), cuts_left=1)
        with serve(state) as base:
            root = Path(tmp) / "cut"
            t = time.perf_counter()
            with contextlib.suppress(DataError):  # the cut: the partial file stays
                dl.fetch_all(selected, root, base=base, retries=0, progress=False)
            part = root / dl.STATE_DIR / "dev_fan.zip.part"
            rows.append(_row("cut at 40%", part.stat().st_size, time.perf_counter() - t, len(body)))
            t = time.perf_counter()
            got = dl.fetch_all(selected, root, base=base, retries=0, progress=False)
            rows.append(_row("resume (Range)", got[0].bytes_downloaded, time.perf_counter() - t, len(body)))
            assert dl.is_complete(root, selected[0])
            print(f"requests: {state.requests[1:]}")
    print_table(rows, f"download of a {args.mb} MiB archive from 127.0.0.1 (MD5 check and unzip included)")


def _row(name: str, fetched: int, seconds: float, size: int) -> dict[str, object]:
    return {
        "call": name,
        "bytes fetched": fetched,
        "of file": f"{fetched / size:.0%}",
        "seconds": seconds,
        "MB/s": f"{fetched / seconds / 1e6:.1f}",
    }


if __name__ == "__main__":
    main()
