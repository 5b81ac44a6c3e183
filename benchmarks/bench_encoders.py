"""Pretrained encoders: asdkit's BEATs against the official code, same random weights, one run.

Run:  .venv/bin/python benchmarks/bench_encoders.py [--size base] [--batches 1,8] [--repeat 3] [--threads 2]
      [--device cpu|cuda]

Needs ../shared/reference/beats (the official code) and kaldi-native-fbank (the dev extra: the official
code's filterbank runs on it through a stand-in ``torchaudio.compliance.kaldi``). Writes a random-weight
checkpoint in the published format to a temporary folder, loads it into both implementations, then prints:

- parity: max absolute difference of the final output and of every layer on 10-s clips (float32), and of
  the 128-band filterbanks (asdkit's vs the kaldi-native-fbank reference);
- speed: clips/s at each batch size (median of ``--repeat`` interleaved rounds after a warm-up, so a busy
  machine slows both alike) and the ratio; also clips per CPU-second of the process (all its threads),
  which a busy machine distorts less than wall time; asdkit's in float32, and with autocast (bfloat16 on CPU,
  float16 on CUDA) as an extra row;
- peak memory: on CPU the peak growth of the resident set (sampled every ms) of a fresh process running
  one batch (models loaded first, so weights are not counted); on CUDA ``max_memory_allocated`` above
  the weights.

The official code returns only the final layer; asdkit's every layer (the official code computes them all
too). Speed and memory run the official model with a torch Kaldi filterbank per clip (as torchaudio's runs),
not the slow kaldi-native-fbank stand-in that its parity numbers use.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._table import print_table

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference" / "beats"
SECONDS = 10.0


def clips(batch: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(16000 * SECONDS)) / 16000
    return 0.05 * torch.randn(batch, len(t), generator=g) + 0.1 * torch.sin(2 * torch.pi * 440 * t)


def load_both(checkpoint: Path, device: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    from asdkit.models.encoders.beats import Beats
    from asdkit.models.encoders.reference import load_official

    return load_official(REFERENCE, checkpoint).to(device), Beats.from_checkpoint(checkpoint).to(device)


def torch_fbank_for_official(official: torch.nn.Module) -> None:
    """Time the official model with a torch filterbank, as torchaudio's would run, instead of the parity
    stand-in (kaldi-native-fbank through Python lists, several times slower than torchaudio)."""
    from asdkit.models.encoders.kaldi_fbank import KaldiFbank

    banks: dict[int, KaldiFbank] = {}

    def fbank(waveform: torch.Tensor, num_mel_bins: int = 23, **_: object) -> torch.Tensor:
        module = banks.setdefault(num_mel_bins, KaldiFbank(16000, num_mel_bins).to(waveform.device))
        return module(waveform.reshape(1, -1))[0]

    official.preprocess.__globals__["ta_kaldi"].fbank = fbank


def runners(official: torch.nn.Module, ours: torch.nn.Module, device: str) -> dict[str, Callable]:
    amp = torch.bfloat16 if device == "cpu" else torch.float16

    def run_official(w: torch.Tensor) -> object:
        return official.extract_features(w)[0]

    def run_ours(w: torch.Tensor) -> object:
        return ours(w)

    def run_ours_amp(w: torch.Tensor) -> object:
        with torch.autocast(device, dtype=amp):
            return ours(w)

    return {"official": run_official, "asdkit": run_ours, f"asdkit ({str(amp)[6:]} autocast)": run_ours_amp}


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def parity(official: torch.nn.Module, ours: torch.nn.Module) -> list[dict[str, object]]:
    from asdkit.models.encoders.reference import knf_fbank, official_layers

    wave = clips(2, seed=1)
    with torch.inference_mode():
        final, _ = official.extract_features(wave)
        theirs = official_layers(official, wave)
        mine = ours(wave)
        fbank_ours = ours.fbank(wave[:1] * 32768)[0]
    fbank_ref = knf_fbank(wave[:1] * 32768, num_mel_bins=128)
    layer_diffs = [float((a - b).abs().max()) for a, b in zip(mine, theirs, strict=True)]
    rows = [
        ("final output (2 clips x 496 frames)", float((mine[-1] - final).abs().max()), final),
        (f"every layer (worst of {len(layer_diffs)})", max(layer_diffs), torch.stack(theirs)),
        (
            "filterbank vs kaldi-native-fbank (998 x 128)",
            float((fbank_ours - fbank_ref).abs().max()),
            fbank_ref,
        ),
    ]
    return [
        {"check": name, "max abs diff": f"{diff:.2e}", "scale (max abs)": float(ref.abs().max())}
        for name, diff, ref in rows
    ]


def speed(official: torch.nn.Module, ours: torch.nn.Module, device: str, batches: list[int], repeat: int):
    run = runners(official, ours, device)
    rows = []
    for batch in batches:
        wave = clips(batch).to(device)
        times: dict[str, list[float]] = {name: [] for name in run}
        cpu: dict[str, list[float]] = {name: [] for name in run}
        with torch.inference_mode():
            for fn in run.values():  # warm-up
                fn(wave)
            for _ in range(repeat):
                for name, fn in run.items():
                    sync(device)
                    start, start_cpu = time.perf_counter(), time.process_time()
                    fn(wave)
                    sync(device)
                    times[name].append(time.perf_counter() - start)
                    cpu[name].append(time.process_time() - start_cpu)
        base = batch / statistics.median(times["official"])
        base_cpu = batch / statistics.median(cpu["official"])
        for name, t in times.items():
            rate, rate_cpu = batch / statistics.median(t), batch / statistics.median(cpu[name])
            rows.append({"implementation": name, "batch": batch, "clips/s": rate, "vs official": rate / base,
                         "clips/CPU-s": rate_cpu, "vs official (CPU)": rate_cpu / base_cpu,
                         "spread (s)": max(t) - min(t)})  # fmt: skip
    return rows


def _peak_child(checkpoint: str, which: str, batch: int, device: str, threads: int) -> None:
    """One batch in this fresh process; prints the peak memory it added above the loaded models."""
    torch.set_num_threads(threads)
    official, ours = load_both(Path(checkpoint), device)
    torch_fbank_for_official(official)
    fn = runners(official, ours, device)[which]
    wave = clips(batch).to(device)
    sync(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        with torch.inference_mode():
            fn(wave)
        sync(device)
        peak = torch.cuda.max_memory_allocated() - before
    else:
        sampler = RssSampler()
        with sampler, torch.inference_mode():
            fn(wave)
        peak = sampler.peak - sampler.start
    print(json.dumps({"peak_mib": peak / 2**20}))


class RssSampler:
    """The resident set size sampled every millisecond in a thread (ru_maxrss would count model loading)."""

    def __init__(self) -> None:
        self.start = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, _rss())

    def __enter__(self) -> RssSampler:
        self.start = self.peak = _rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def peak_memory(checkpoint: Path, device: str, batches: list[int], threads: int) -> list[dict[str, object]]:
    rows = []
    for batch in batches:
        for which in ("official", "asdkit"):
            command = [sys.executable, __file__, "--child", str(checkpoint), which, str(batch), device]
            out = subprocess.run([*command, str(threads)], capture_output=True, text=True, check=True)
            peak = json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]
            rows.append({"implementation": which, "batch": batch, "peak MiB above weights": peak})
    return rows


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, checkpoint, which, batch, device, threads = sys.argv
        _peak_child(checkpoint, which, int(batch), device, int(threads))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["tiny", "small", "base"], default="base")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    args = parser.parse_args()
    if not REFERENCE.is_dir():
        sys.exit(f"error: {REFERENCE} is absent (the official BEATs code this benchmark compares against)")
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    from asdkit.models.encoders.beats import Beats

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Beats.save_random_checkpoint(Path(tmp) / "beats_random.pt", seed=0, size=args.size)
        official, ours = load_both(checkpoint, "cpu")
        n_params = sum(p.numel() for p in ours.parameters()) / 1e6
        print(f"BEATs {args.size} ({n_params:.1f} M parameters, random weights), {SECONDS:.0f}-s clips, "
              f"{args.threads} threads, device {args.device}, torch {torch.__version__}")  # fmt: skip
        print(f"load average at start (other processes share the CPUs): {os.getloadavg()[0]:.1f}")
        print_table(parity(official, ours), "Parity with the official code (float32, CPU)")
        official, ours = official.to(args.device), ours.to(args.device)
        torch_fbank_for_official(official)
        print_table(speed(official, ours, args.device, batches, args.repeat), f"Throughput ({args.device})")
        if not args.no_memory:
            print_table(
                peak_memory(checkpoint, args.device, batches, args.threads), "Peak memory (one batch)"
            )
        print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
