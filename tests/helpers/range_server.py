"""A local file server with HTTP Range support (stdlib only) for the download tests and demo.

It serves ``files`` (URL path -> bytes) on 127.0.0.1 in a daemon thread, can cut the connection after a
number of bytes for the first few requests (a flaky network), and records each request's path and Range
header so a test can check that a download resumed rather than restarted.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class ServerState:
    files: dict[str, bytes]
    cut_after: int | None = None  # bytes sent before the connection drops...
    cuts_left: int = 0  # ...for this many requests
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    sent: int = 0  # body bytes sent in all


def record_json(files: dict[str, bytes], md5s: dict[str, str]) -> bytes:
    """A Zenodo records-API answer listing ``files`` (name -> bytes) with the given MD5s."""
    entries = [{"key": k, "size": len(v), "checksum": f"md5:{md5s[k]}"} for k, v in files.items()]
    return json.dumps({"files": entries}).encode()


def _handler(state: ServerState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            rng = self.headers.get("Range")
            state.requests.append((path, rng))
            body = state.files.get(path)
            if body is None:
                self.send_error(404)
                return
            start = 0
            if rng and rng.startswith("bytes=") and not path.startswith("/api/"):
                start = int(rng[6:].split("-", 1)[0])
                if start >= len(body):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            payload = body[start:]
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if state.cut_after is not None and state.cuts_left > 0 and not path.startswith("/api/"):
                state.cuts_left -= 1
                self.wfile.write(payload[: state.cut_after])
                state.sent += min(len(payload), state.cut_after)
                self.wfile.flush()
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(2)
                return
            self.wfile.write(payload)
            state.sent += len(payload)

    return Handler


@contextlib.contextmanager
def serve(state: ServerState) -> Iterator[str]:
    """Serve ``state`` on a free port of 127.0.0.1; yields the base URL and stops the server after."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
