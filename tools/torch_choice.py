"""Which index tools/bootstrap.sh installs the pinned torch from; prints the extra pip arguments.

A CPU machine gets a CPU build: when the configured pip index would serve a CUDA build of the
pinned torch (PyPI's Linux wheels are), PyTorch's CPU wheel index is used if it answers; if it
does not, one line says what is about to be downloaded and how to choose. Choose with
``TGRPO_TORCH=cpu|cuda|auto`` (auto, the default: cuda when an NVIDIA driver is present, else cpu)
or ``TORCH_INDEX_URL=<index>`` (used as is). Costs nothing when the pinned torch is installed
already, and one pip resolution (no download) otherwise.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

CPU_INDEX = os.environ.get("TGRPO_TORCH_CPU_INDEX", "https://download.pytorch.org/whl/cpu")
CONSTRAINTS = Path(__file__).resolve().parents[1] / "requirements" / "constraints.txt"
GPU_BUILD = re.compile(r"^(nvidia-|triton\b)|\+(cu|rocm)", re.IGNORECASE)


def say(message: str) -> None:
    print(f"[bootstrap] {message}", file=sys.stderr)


def pinned_torch() -> str:
    return next(line.split("==", 1)[1].strip() for line in CONSTRAINTS.read_text().splitlines()
                if line.startswith("torch=="))


def is_gpu_build(version: str, requires: list[str]) -> bool:
    """A CUDA/ROCm build: a +cu/+rocm local version, or NVIDIA runtime wheels among its requirements."""
    return bool(GPU_BUILD.search("+" + version.partition("+")[2])) or any(GPU_BUILD.match(r) for r in requires)


def installed_cpu_torch(pin: str) -> bool:
    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return False
    return version.partition("+")[0] == pin and not is_gpu_build(version, importlib.metadata.requires("torch") or [])


def index_torch(pin: str) -> dict:
    """What ``pip install torch==pin`` would fetch from the configured index (resolved, not downloaded)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps",
                        "--quiet", "--report", str(report), f"torch=={pin}"], check=True, stderr=subprocess.DEVNULL)
        item = json.loads(report.read_text())["install"][0]
    meta = item["metadata"]
    return {"version": meta["version"], "url": item["download_info"]["url"],
            "gpu": is_gpu_build(meta["version"], meta.get("requires_dist") or [])}


def reachable(url: str, timeout: float = 5.0) -> bool:
    try:
        urllib.request.urlopen(url.rstrip("/") + "/torch/", timeout=timeout)
        return True
    except (OSError, ValueError):
        return False


def has_nvidia_gpu() -> bool:
    if Path("/proc/driver/nvidia/version").exists():
        return True
    smi = shutil.which("nvidia-smi")
    return bool(smi) and subprocess.run([smi, "-L"], capture_output=True).returncode == 0


def choose() -> list[str]:
    if os.environ.get("TORCH_INDEX_URL"):
        say(f"torch from TORCH_INDEX_URL={os.environ['TORCH_INDEX_URL']}")
        return ["--index-url", os.environ["TORCH_INDEX_URL"]]
    want = os.environ.get("TGRPO_TORCH", "auto").lower()
    if want not in ("auto", "cpu", "cuda"):
        say(f"error: TGRPO_TORCH={want!r}: set it to cpu, cuda or auto (or TORCH_INDEX_URL to an index)")
        raise SystemExit(2)
    if want == "auto":
        want = "cuda" if has_nvidia_gpu() else "cpu"
    pin = pinned_torch()
    if want == "cuda" or installed_cpu_torch(pin):
        return []
    wheel = index_torch(pin)
    if not wheel["gpu"]:
        return []
    if reachable(CPU_INDEX):
        say(f"the configured index serves a CUDA build of torch=={pin}; using PyTorch's CPU wheels: {CPU_INDEX}")
        return ["--index-url", CPU_INDEX]
    say(f"about to download a CUDA build of torch=={pin} (several GB with its nvidia-* wheels): {wheel['url']}; "
        f"PyTorch's CPU index {CPU_INDEX} is unreachable. For a CPU build set TORCH_INDEX_URL to an index that "
        "has one; TGRPO_TORCH=cuda takes the CUDA build without this note.")
    return []


if __name__ == "__main__":
    print(" ".join(choose()))
