"""Load test of ``asdkit serve`` on loopback: N concurrent clients scoring 10-s clips with a model.

Run: ``.venv/bin/python benchmarks/bench_service.py [--model RUN_OR_MODEL | --detector ae|ensemble]
[--clients 1 8] [--requests 200]``

Without ``--model`` it trains ``--detector`` on a few synthetic 10-s clips: the official-shape dense AE
(640-128x4-8, one epoch; the default) or the default detector (``ensemble``: Mahalanobis + patch bank).
The scoring cost does not depend on how well it is trained. The server runs in a child process
(``python -m asdkit serve``, its log in a file that is printed when it fails, and always stopped, killed
if it does not exit), the clients here (asyncio + httpx), each client sending one clip
after another; every level stops at ``--requests`` requests or ``--time-limit`` seconds. The reference
row scores the same clips in this process, one after another, through the service's own scoring function
(decode, log-mel, network) without HTTP; ``scoring_p50_ms`` is that function's time inside the server
(what the rest of the latency spends on HTTP and waiting), and ``cpu_ms_per_clip`` the CPU time that the
server and the clients together spent per clip, which the machine's other load does not inflate much.
Target: no errors and p99 < 100 ms at 8 clients on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import print_table

SAMPLE_RATE = 16000


def make_clips(n: int, seconds: float = 10.0, seed: int = 0) -> list[bytes]:
    """``n`` 10-s synthetic pump clips as 16-bit wav bytes (the toolkit's own generator); with ``seed`` 0
    every fourth is anomalous, with another seed all are normal (training clips)."""
    import soundfile as sf

    from asdkit.data.synthetic import synthesize_clip

    rng = np.random.default_rng(seed)
    clips = []
    for i in range(n):
        wave = synthesize_clip(
            "pump", 0, "source", "bearing" if i % 4 == 3 and seed == 0 else None, 1.0, rng, seconds, 16000
        )
        buf = io.BytesIO()
        sf.write(buf, wave, SAMPLE_RATE, format="WAV", subtype="PCM_16")
        clips.append(buf.getvalue())
    return clips


def train_model(folder: Path, clips: list[bytes], detector_name: str = "ae") -> Path:
    """``detector_name`` fitted on the clips (the dense AE: one epoch), saved as a model folder."""
    from asdkit.data.audio import decode_audio
    from asdkit.data.manifest import Clip
    from asdkit.detectors.base import ClipFeatures
    from asdkit.detectors.registry import create_detector
    from asdkit.features.config import FeatureConfig
    from asdkit.features.logmel import compute_logmel

    config = FeatureConfig()
    waves = [decode_audio(io.BytesIO(c), f"clip{i}")[0] for i, c in enumerate(clips)]
    X = ClipFeatures(
        compute_logmel(waves, config),
        [Clip(path=Path(f"c{i}.wav"), machine="pump", section="00") for i in range(len(waves))],
        config,
    )
    params: dict[str, object] = {"epochs": 1, "accelerator": "cpu"} if detector_name == "ae" else {}
    detector = create_detector(detector_name, **params).fit(X)  # type: ignore[attr-defined]
    return detector.save(folder / "pump", metadata={"machine": "pump"})


def percentiles(latencies_s: list[float]) -> dict[str, float]:
    ms = np.asarray(latencies_s) * 1e3
    if not len(ms):
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan")}
    return {f"p{q}_ms": float(np.percentile(ms, q)) for q in (50, 95, 99)}


def reference_row(model_path: Path, clips: list[bytes], requests: int, time_limit: float) -> dict:
    """In-process scoring of the same clips, one after another: the floor any service adds to."""
    import torch

    from asdkit.service.models import load_served_models, score_audio

    torch.set_num_threads(1)
    model = next(iter(load_served_models(model_path).values()))
    score_audio(model, io.BytesIO(clips[0]), "warmup.wav")
    latencies = []
    cpu_start = time.process_time()
    start = time.perf_counter()
    for i in range(requests):
        t = time.perf_counter()
        score_audio(model, io.BytesIO(clips[i % len(clips)]), f"clip{i}.wav")
        latencies.append(time.perf_counter() - t)
        if time.perf_counter() - start > time_limit:
            break
    elapsed = time.perf_counter() - start
    return {
        "name": "in-process (reference)",
        "clients": 1,
        "requests": len(latencies),
        "errors": 0,
        "clips_per_s": len(latencies) / elapsed,
        **percentiles(latencies),
        "scoring_p50_ms": float(np.median(latencies)) * 1e3,
        "cpu_ms_per_clip": (time.process_time() - cpu_start) / len(latencies) * 1e3,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load_level(
    url: str, clips: list[bytes], clients: int, requests: int, time_limit: float, server_pid: int
) -> dict:
    import httpx

    latencies: list[float] = []
    scoring_ms: list[float] = []  # the server's own decode + features + network time per clip
    errors = 0
    issued = 0
    deadline = time.perf_counter() + time_limit

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal errors, issued
        while issued < requests and time.perf_counter() < deadline:
            i = issued
            issued += 1
            files = {"file": (f"clip{i}.wav", clips[i % len(clips)], "audio/wav")}
            t = time.perf_counter()
            try:
                response = await http.post(f"{url}/score", files=files)
                ok = response.status_code == 200 and "score" in response.json()
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - t)
            errors += not ok
            if ok:
                scoring_ms.append(response.json()["timing_ms"]["total"])

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        await http.post(f"{url}/score", files={"file": ("warm.wav", clips[0], "audio/wav")})
        cpu_server, cpu_here = cpu_seconds(server_pid), time.process_time()
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - start
        cpu_server = cpu_seconds(server_pid) - cpu_server
        cpu_here = time.process_time() - cpu_here
    return {
        "name": "HTTP /score",
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        "clips_per_s": len(latencies) / elapsed,
        **percentiles(latencies),
        "scoring_p50_ms": float(np.median(scoring_ms)) if scoring_ms else float("nan"),
        "cpu_ms_per_clip": (cpu_server + cpu_here) / max(len(latencies), 1) * 1e3,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log_path: Path, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited:\n{log_tail(log_path)}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.3)
    raise SystemExit(f"the server did not answer /health in time:\n{log_tail(log_path)}")


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop(proc: subprocess.Popen) -> None:
    """Terminate the server; kill it if it has not exited within 10 s, so it never outlives the script."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model folder or run directory (default: train one)")
    parser.add_argument(
        "--detector", default="ae", help="what to train without --model: ae (default) or ensemble"
    )
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--requests", type=int, default=200, help="requests per level (bounded count)")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per level (bounded time)")
    parser.add_argument("--workers", type=int, default=2, help="the server's scoring threads")
    parser.add_argument("--clips", type=int, default=8, help="distinct 10-s clips to cycle through")
    args = parser.parse_args()
    from asdkit.service.models import load_served_models

    clips = make_clips(args.clips)
    with tempfile.TemporaryDirectory() as tmp:
        if args.model is not None:
            model = args.model
        else:
            train_clips = (
                clips[: max(2, args.clips // 2)] if args.detector == "ae" else make_clips(16, seed=1)
            )
            model = train_model(Path(tmp), train_clips, args.detector)
        detector = next(iter(load_served_models(model).values())).detector.name
        load_before = os.getloadavg()
        rows = [reference_row(model, clips, args.requests, args.time_limit)]
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server_log = Path(tmp) / "server.log"
        log_file = server_log.open("wb")  # a pipe nobody reads fills up and blocks the server
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "asdkit",
                "serve",
                str(model),
                "--port",
                str(port),
                "--workers",
                str(args.workers),
                "--max-upload-mb",
                "5",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
        try:
            wait_healthy(url, server, server_log)
            for clients in args.clients:
                rows.append(
                    asyncio.run(load_level(url, clips, clients, args.requests, args.time_limit, server.pid))
                )
        finally:
            stop(server)
            log_file.close()
        warnings = [line for line in log_tail(server_log, 10**6).splitlines() if "warning" in line.lower()]
        load_after = os.getloadavg()
    print_table(
        rows,
        title=f"asdkit serve, {detector}, 10-s clips, {args.workers} scoring threads, {os.cpu_count()} CPUs",
    )
    print(f"\nserver log: {len(warnings)} warning line(s)" + (f", first: {warnings[0]}" if warnings else ""))
    print(
        f"\nload average (1/5/15 min) before: {' '.join(f'{x:.2f}' for x in load_before)}, "
        f"after: {' '.join(f'{x:.2f}' for x in load_after)}"
    )
    worst = max((r for r in rows[1:] if r["clients"] == 8), key=lambda r: r["p99_ms"], default=None)
    if worst is not None:
        verdict = "met" if worst["errors"] == 0 and worst["p99_ms"] < 100 else "NOT met"
        print(f"target (no errors, p99 < 100 ms at 8 clients): {verdict}")


if __name__ == "__main__":
    main()
