"""Fetching DCASE Task 2 / MIMII archives and unpacking them into trees that ``asdkit scan`` reads as is.

Safety rules, so an interrupted or corrupt download never leaves a tree that looks complete:

- bytes go to ``<root>/.asdkit-download/<file>.part``; a rerun resumes it with an HTTP Range request;
- the finished file is checked against the size and MD5 the Zenodo record publishes (size alone when
  the record's metadata cannot be read, with a warning); a mismatch deletes the file;
- the zip is unpacked into a staging folder beside the destination and its folders are renamed into
  place only once extraction succeeded; a marker ``.asdkit-download/<file>.done`` written last says the
  archive is complete, and a rerun skips archives that have one.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import shutil
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from asdkit.data.catalogue import ZENODO, Archive, archives
from asdkit.errors import AsdkitError, DataError
from asdkit.utils.io import atomic_write_text

log = logging.getLogger(__name__)

STATE_DIR = ".asdkit-download"
BASE_URL_ENV = "ASDKIT_DOWNLOAD_URL"
CHUNK = 1 << 16
USER_AGENT = "asdkit-download"
#: Seconds to wait before resuming, times the attempt number (the tests set it to 0).
RETRY_WAIT = 2.0


class NetworkError(AsdkitError):
    """The server cannot be reached at all (no network, DNS failure, refused connection)."""


@dataclass(frozen=True)
class Remote:
    """What the record says about one file: its size and MD5 (either may be unknown)."""

    size: int | None
    md5: str | None


@dataclass
class Fetched:
    archive: Archive
    path: Path  # where it was unpacked
    bytes_downloaded: int
    resumed_from: int
    skipped: bool  # already complete before this call


def base_url(explicit: str | None = None) -> str:
    return (explicit or os.environ.get(BASE_URL_ENV) or ZENODO).rstrip("/")


def select(dataset: str, split: str | None, machines: Sequence[str] | None) -> list[Archive]:
    """The catalogue's archives for a command line; a bad name is one line listing what exists."""
    try:
        found = archives(dataset, split, list(machines) if machines else None)
    except ValueError as exc:
        raise AsdkitError(str(exc)) from None
    if not found:
        raise AsdkitError(f"{dataset} has no {split} split")
    return found


def is_complete(root: Path, archive: Archive) -> bool:
    return _marker(root, archive).is_file()


def record_files(record: str, base: str, timeout: float = 30.0) -> dict[str, Remote]:
    """Sizes and MD5s of a Zenodo record's files (``GET /api/records/<id>``), keyed by file name."""
    data = json.loads(_open(f"{base}/api/records/{record}", timeout=timeout).read().decode())
    files = data.get("files", [])
    if isinstance(files, dict):  # some API versions nest the list under "entries"
        files = files.get("entries", [])
        files = list(files.values()) if isinstance(files, dict) else files
    remote = {}
    for f in files:
        checksum = str(f.get("checksum") or "")
        md5 = checksum.split(":", 1)[1] if checksum.startswith("md5:") else None
        remote[str(f.get("key") or f.get("filename"))] = Remote(f.get("size") or f.get("filesize"), md5)
    return remote


def describe(selected: Sequence[Archive], base: str) -> list[tuple[Archive, Remote]]:
    """Each archive with what its record publishes (for ``--dry-run``); unknown sizes when unreachable."""
    cache: dict[str, dict[str, Remote]] = {}
    offline = False
    out = []
    for a in selected:
        if a.record not in cache:
            cache[a.record] = {}
            if not offline:
                try:
                    cache[a.record] = record_files(a.record, base)
                except NetworkError as exc:
                    log.warning("sizes unknown: %s", exc)
                    offline = True
                except (AsdkitError, OSError, ValueError) as exc:
                    log.warning("record %s: sizes unknown (%s)", a.record, exc)
        out.append((a, _expected(a, cache[a.record].get(a.file))))
    return out


def fetch_all(
    selected: Sequence[Archive],
    root: Path,
    *,
    base: str | None = None,
    retries: int = 3,
    keep_archives: bool = False,
    progress: bool = True,
    say: Callable[[str], None] | None = None,
    timeout: float = 60.0,
) -> list[Fetched]:
    """Download, check and unpack every archive not already complete under ``root``."""
    base = base_url(base)
    root = Path(root)
    records: dict[str, dict[str, Remote]] = {}
    done = []
    for a in selected:
        if is_complete(root, a):
            done.append(Fetched(a, root / a.dest, 0, 0, True))
            continue
        if a.record not in records:
            records[a.record] = _record_or_empty(a.record, base, timeout)
        remote = _expected(a, records[a.record].get(a.file))
        if say:
            say(f"{a.dataset} {a.split} {a.machine}: {a.file} ({size_text(remote.size)})")
        part = root / STATE_DIR / f"{a.file}.part"
        resumed_from = part.stat().st_size if part.exists() else 0
        got = download_file(a.url(base), part, remote, retries=retries, progress=progress, timeout=timeout)
        unpack(part, root / a.dest, root / STATE_DIR / f"{a.file}.staging")
        if keep_archives:
            os.replace(part, root / STATE_DIR / a.file)
        else:
            part.unlink()
        atomic_write_text(
            _marker(root, a),
            json.dumps({"file": a.file, "record": a.record, "size": remote.size, "md5": remote.md5}) + "\n",
        )
        done.append(Fetched(a, root / a.dest, got, resumed_from, False))
    return done


def download_file(
    url: str,
    part: Path,
    remote: Remote,
    *,
    retries: int = 3,
    progress: bool = True,
    timeout: float = 60.0,
) -> int:
    """Bring ``part`` to the full file, resuming what is there; returns the bytes fetched by this call.

    A cut connection is resumed up to ``retries`` times; after that the partial file stays for the next
    call to resume. A finished file of the wrong size or MD5 is deleted and reported.
    """
    part.parent.mkdir(parents=True, exist_ok=True)
    fetched = 0
    attempt = 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        if remote.size is not None and have > remote.size:
            part.unlink()
            have = 0
        if remote.size is not None and have == remote.size:
            break
        try:
            total, received = _get(url, part, have, timeout, progress, remote.size)
        except _PastTheEnd:  # the partial file already holds every byte (size unknown beforehand)
            break
        except _Resumable as exc:
            fetched += exc.received
            attempt += 1
            if attempt > retries:
                size = part.stat().st_size if part.exists() else 0
                raise DataError(
                    f"{url}: connection lost after {size} of {size_text(remote.size)} ({exc}); "
                    "run the command again to resume"
                ) from None
            log.warning("%s: connection lost (%s); resuming (%d/%d)", part.name, exc, attempt, retries)
            time.sleep(RETRY_WAIT * attempt)
            continue
        fetched += received
        if remote.size is None:
            remote = Remote(total, remote.md5)
        break
    _verify(part, remote, url)
    return fetched


class _PastTheEnd(Exception):
    """HTTP 416 to a Range request starting at the file's end."""


class _Resumable(Exception):
    def __init__(self, message: str, received: int) -> None:
        super().__init__(message)
        self.received = received


def _get(
    url: str, part: Path, have: int, timeout: float, progress: bool, size: int | None
) -> tuple[int | None, int]:
    """One GET from byte ``have`` on, appended to ``part``; returns (total size if known, bytes received)."""
    from tqdm.auto import tqdm

    headers = {"Range": f"bytes={have}-"} if have else {}
    response = _open(url, headers=headers, timeout=timeout)
    received = 0
    with response:
        if have and response.status != 206:  # the server ignored the range: start again
            have = 0
        total = _total_size(response, have)
        with (
            open(part, "ab" if have else "wb") as f,
            tqdm(
                total=total or size,
                initial=have,
                unit="B",
                unit_scale=True,
                desc=part.name.removesuffix(".part"),
                disable=not progress,
                leave=False,
            ) as bar,
        ):
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (http.client.IncompleteRead, ConnectionError, TimeoutError) as exc:
                    raise _Resumable(type(exc).__name__, received) from None
                if not chunk:
                    break
                f.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        if total is not None and have + received < total:
            raise _Resumable(f"stream ended at {have + received} of {total} bytes", received)
    return total, received


def _total_size(response: http.client.HTTPResponse, have: int) -> int | None:
    content_range = response.headers.get("Content-Range")
    if content_range and "/" in content_range:
        tail = content_range.rsplit("/", 1)[1]
        return int(tail) if tail.isdigit() else None
    length = response.headers.get("Content-Length")
    return have + int(length) if length and length.isdigit() else None


def _open(url: str, headers: dict[str, str] | None = None, timeout: float = 60.0) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and headers and "Range" in headers:
            raise _PastTheEnd from None
        raise DataError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        host = urllib.request.urlparse(url).netloc
        raise NetworkError(f"cannot reach {host} (no network access?): {exc.reason}") from None
    except TimeoutError:
        host = urllib.request.urlparse(url).netloc
        raise NetworkError(f"cannot reach {host}: timed out after {timeout:g} s") from None


def _verify(part: Path, remote: Remote, url: str) -> None:
    size = part.stat().st_size
    if remote.size is not None and size != remote.size:
        part.unlink()
        raise DataError(f"{url}: got {size} bytes, the record says {remote.size}; deleted, run again")
    if remote.md5 is not None:
        digest = hashlib.md5()
        with open(part, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != remote.md5.lower():
            part.unlink()
            raise DataError(
                f"{url}: checksum mismatch (md5 {digest.hexdigest()}, the record says {remote.md5}); "
                "deleted, run again"
            )


def unpack(zip_path: Path, dest: Path, staging: Path) -> None:
    """Extract into ``staging``, then rename its entries into ``dest`` (merging folders that exist).

    A bad zip or an entry escaping the folder leaves ``dest`` untouched. An existing file or folder in
    ``dest`` that the archive would overwrite is an error, never silently replaced.
    """
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        with zipfile.ZipFile(zip_path) as z:
            for name in z.namelist():
                target = (staging / name).resolve()
                if not target.is_relative_to(staging.resolve()):
                    raise DataError(f"{zip_path.name}: entry {name!r} would be written outside the folder")
            z.extractall(staging)
    except zipfile.BadZipFile as exc:
        shutil.rmtree(staging, ignore_errors=True)
        zip_path.unlink()
        raise DataError(f"{zip_path.name}: not a valid zip ({exc}); deleted, run again") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        moves = _planned_moves(staging, dest)
    except DataError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    dest.mkdir(parents=True, exist_ok=True)
    for src, dst in moves:
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
    shutil.rmtree(staging, ignore_errors=True)


def _planned_moves(staging: Path, dest: Path) -> list[tuple[Path, Path]]:
    """Entries new to ``dest`` move whole; existing folders are merged (an evaluation set's training and
    test archives share each machine folder). A file that exists already is left alone when identical
    (both archives carry it) and is an error when it differs; nothing moves until every entry is planned.
    """
    moves: list[tuple[Path, Path]] = []
    for entry in sorted(p for p in staging.iterdir() if p.name != "__MACOSX"):
        target = dest / entry.name
        if not target.exists():
            moves.append((entry, target))
        elif entry.is_dir() and target.is_dir():
            moves += _planned_moves(entry, target)
        elif not (entry.is_file() and target.is_file() and _same_file(entry, target)):
            raise DataError(f"{target}: already exists; move it away or choose another --to folder")
    return moves


def _same_file(a: Path, b: Path) -> bool:
    return a.stat().st_size == b.stat().st_size and a.read_bytes() == b.read_bytes()


def _record_or_empty(record: str, base: str, timeout: float) -> dict[str, Remote]:
    try:
        return record_files(record, base, timeout)
    except NetworkError:
        raise
    except (DataError, OSError, ValueError) as exc:
        log.warning("record %s: no published checksums (%s); checking sizes only", record, exc)
        return {}


def _expected(archive: Archive, published: Remote | None) -> Remote:
    published = published or Remote(None, None)
    return Remote(archive.size or published.size, archive.md5 or published.md5)


def _marker(root: Path, archive: Archive) -> Path:
    return Path(root) / STATE_DIR / f"{archive.file}.done"


def size_text(size: int | None) -> str:
    if size is None:
        return "size unknown"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000  # type: ignore[assignment]
    return f"{size} B"
