"""Which torch build tools/bootstrap.sh installs, and where uv finds it; prints ``<build> [uv arguments]``.

The lock (requirements/lock.txt) holds torch as its CPU wheel, ``torch==<pin>+cpu`` with its
hash, which PyPI does not serve (PyPI's Linux torch is a CUDA build of several GB). uv reads no
pip configuration, so this script finds the wheel for it:

1. the pinned CPU build is installed already: nothing to find (``cpu``);
2. pip's configured sources have it as a local file (a wheel folder in pip.conf, as on the
   machines this was built on): ``cpu --find-links <folder>``;
3. PyTorch's CPU index (or ``TORCH_INDEX_URL``) answers: ``cpu --extra-index-url <index> ...``;
4. none of these: one line says a CUDA build is about to be downloaded and how to choose, and
   the bootstrap installs the lock without its torch and torch==<pin> from PyPI (``cuda``).

Choose with ``TGRPO_TORCH=cpu|cuda|auto`` (auto, the default: cuda when an NVIDIA driver is
present, else cpu) and ``TORCH_INDEX_URL=<index>`` (where torch comes from: an index with the
CPU wheel, or a CUDA index such as .../whl/cu128 with TGRPO_TORCH=cuda). The CUDA build is the
one package installed outside the lock (its nvidia-* wheels depend on the CUDA version).
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
import urllib.parse
import urllib.request
from pathlib import Path

CPU_INDEX = os.environ.get("TGRPO_TORCH_CPU_INDEX", "https://download.pytorch.org/whl/cpu")
CONSTRAINTS = Path(__file__).resolve().parents[1] / "requirements" / "constraints.txt"
GPU_BUILD = re.compile(r"^(nvidia-|triton\b)|\+(cu|rocm)", re.IGNORECASE)
BEST_MATCH = ["--index-strategy", "unsafe-best-match"]  # pinned with hashes: any index holding the same file will do


def say(message: str) -> None:
    print(f"[bootstrap] {message}", file=sys.stderr)


def pinned_torch() -> str:
    return next(line.split("==", 1)[1].split("#")[0].strip() for line in CONSTRAINTS.read_text().splitlines()
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


def local_cpu_wheel(pin: str) -> Path | None:
    """The folder of a local file ``torch-<pin>+cpu-*.whl`` that pip's configured sources offer
    (pip resolves it, nothing is downloaded), or None."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps",
                               "--quiet", "--report", str(report), f"torch=={pin}+cpu"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if done.returncode or not report.exists():
            return None
        url = json.loads(report.read_text())["install"][0]["download_info"]["url"]
    if not url.startswith("file:"):
        return None
    return Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).parent


def reachable(url: str, timeout: float = 5.0) -> bool:
    try:
        urllib.request.urlopen(url.rstrip("/") + "/torch/", timeout=timeout)
        return True
    except (OSError, ValueError):
        return False


def cpu_wheel_source(pin: str) -> list[str] | None:
    """uv arguments under which ``torch==<pin>+cpu`` is found, or None when no source has it."""
    if os.environ.get("TORCH_INDEX_URL"):
        return ["--extra-index-url", os.environ["TORCH_INDEX_URL"], *BEST_MATCH]
    folder = local_cpu_wheel(pin)
    if folder is not None:
        return ["--find-links", str(folder)]
    if reachable(CPU_INDEX):
        return ["--extra-index-url", CPU_INDEX, *BEST_MATCH]
    return None


def has_nvidia_gpu() -> bool:
    if Path("/proc/driver/nvidia/version").exists():
        return True
    smi = shutil.which("nvidia-smi")
    return bool(smi) and subprocess.run([smi, "-L"], capture_output=True).returncode == 0


def choose() -> tuple[str, list[str]]:
    """("cpu" | "cuda", uv arguments for installing torch)."""
    want = os.environ.get("TGRPO_TORCH", "auto").lower()
    if want not in ("auto", "cpu", "cuda"):
        say(f"error: TGRPO_TORCH={want!r}: set it to cpu, cuda or auto (or TORCH_INDEX_URL to an index)")
        raise SystemExit(2)
    if want == "auto":
        want = "cuda" if has_nvidia_gpu() else "cpu"
    pin = pinned_torch()
    if want == "cuda":
        index = os.environ.get("TORCH_INDEX_URL")
        say(f"torch=={pin} as a CUDA build from {index or 'PyPI'} (the one package installed outside the lock)")
        return "cuda", (["--extra-index-url", index, *BEST_MATCH] if index else [])
    if installed_cpu_torch(pin):
        return "cpu", []
    source = cpu_wheel_source(pin)
    if source is not None:
        return "cpu", source
    say(f"no source of the locked CPU wheel torch=={pin}+cpu (pip's wheel folders, PyTorch's CPU index {CPU_INDEX} "
        f"is unreachable): about to download a CUDA build of torch=={pin} from PyPI (several GB with its nvidia-* "
        "wheels). For a CPU build set TORCH_INDEX_URL to an index that has it; TGRPO_TORCH=cuda takes the CUDA "
        "build without this note.")
    return "cuda", []


if __name__ == "__main__":
    build, args = choose()
    print(" ".join([build, *args]))
