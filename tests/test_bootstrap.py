"""tools/torch_choice.py, bootstrap's choice of torch index: a CPU machine gets a CPU build, and a
CUDA build from the configured index is replaced by PyTorch's CPU wheels when that index answers,
else announced with the way to choose. A fake CUDA torch wheel on a local index and a local CPU
index stand in for PyPI and download.pytorch.org (this machine reaches neither)."""
import functools
import http.server
import sys
import threading
import zipfile
from pathlib import Path

import pytest

import tgrpo_lib

sys.path.insert(0, str(Path(tgrpo_lib.PROJECT_ROOT) / "tools"))
import torch_choice  # noqa: E402

sys.path.pop(0)


@pytest.mark.parametrize("version, requires, gpu", [
    ("2.13.0+cpu", ["filelock", "sympy>=1.13.3"], False),
    ("2.13.0", ["filelock"], False),                                     # macOS / CPU-only platforms
    ("2.13.0", ["nvidia-cuda-runtime-cu12==12.8.90; platform_system == 'Linux'"], True),   # PyPI's Linux wheel
    ("2.13.0", ["triton==3.5.0; platform_system == 'Linux'"], True),
    ("2.13.0+cu128", [], True),
    ("2.13.0+rocm6.4", [], True),
])
def test_gpu_builds_are_recognised(version, requires, gpu):
    assert torch_choice.is_gpu_build(version, requires) is gpu


def fake_cuda_torch(folder: Path, version: str) -> Path:
    """A wheel named and described like PyPI's Linux torch: no local version, nvidia-* requirements."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"torch-{version}-py3-none-any.whl"
    info = f"torch-{version}.dist-info"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("torch/__init__.py", "")
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n"
                                       "Requires-Dist: nvidia-cuda-runtime-cu12==12.8.90; platform_system == 'Linux'\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "")
    return wheel


@pytest.fixture
def cuda_index(tmp_path, monkeypatch):
    """pip sees only a local folder holding a CUDA-looking torch at the pinned version."""
    wheel = fake_cuda_torch(tmp_path / "index", torch_choice.pinned_torch())
    for var, value in {"PIP_CONFIG_FILE": "/dev/null", "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheel.parent),
                       "PIP_CONSTRAINT": "", "TGRPO_TORCH": "cpu"}.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("TORCH_INDEX_URL", raising=False)
    monkeypatch.setattr(torch_choice, "installed_cpu_torch", lambda pin: False)  # as in a fresh venv
    return wheel


@pytest.fixture
def cpu_index(tmp_path):
    """A local stand-in for https://download.pytorch.org/whl/cpu (answers on /torch/)."""
    (tmp_path / "cpu" / "torch").mkdir(parents=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "cpu"))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_a_cuda_build_is_replaced_by_the_cpu_index(cuda_index, cpu_index, monkeypatch, capsys):
    monkeypatch.setattr(torch_choice, "CPU_INDEX", cpu_index)
    assert torch_choice.index_torch(torch_choice.pinned_torch())["gpu"] is True  # pip's real resolution
    assert torch_choice.choose() == ["--index-url", cpu_index]
    assert "using PyTorch's CPU wheels" in capsys.readouterr().err


def test_an_unreachable_cpu_index_is_announced_with_the_way_to_choose(cuda_index, monkeypatch, capsys):
    monkeypatch.setattr(torch_choice, "CPU_INDEX", "http://127.0.0.1:9/whl/cpu")  # nothing listens there
    assert torch_choice.choose() == []
    err = capsys.readouterr().err
    assert "about to download a CUDA build" in err and cuda_index.name in err
    assert "TORCH_INDEX_URL" in err and "TGRPO_TORCH=cuda" in err


def test_nothing_is_resolved_when_the_cpu_build_is_installed_or_cuda_is_asked(monkeypatch):
    monkeypatch.delenv("TORCH_INDEX_URL", raising=False)
    monkeypatch.setattr(torch_choice, "index_torch", lambda pin: pytest.fail("resolved the index"))
    monkeypatch.setenv("TGRPO_TORCH", "cpu")
    monkeypatch.setattr(torch_choice, "installed_cpu_torch", lambda pin: True)
    assert torch_choice.choose() == []
    monkeypatch.setenv("TGRPO_TORCH", "cuda")
    monkeypatch.setattr(torch_choice, "installed_cpu_torch", lambda pin: False)
    assert torch_choice.choose() == []


def test_torch_index_url_is_used_as_is_and_a_bad_choice_is_refused(monkeypatch, capsys):
    monkeypatch.setenv("TORCH_INDEX_URL", "https://example.invalid/simple")
    assert torch_choice.choose() == ["--index-url", "https://example.invalid/simple"]
    monkeypatch.delenv("TORCH_INDEX_URL")
    monkeypatch.setenv("TGRPO_TORCH", "gpu")
    with pytest.raises(SystemExit) as exit_:
        torch_choice.choose()
    assert exit_.value.code == 2 and "set it to cpu, cuda or auto" in capsys.readouterr().err


@pytest.mark.skipif(torch_choice.has_nvidia_gpu(), reason="a GPU machine may hold a CUDA build")
def test_this_venv_has_the_pinned_cpu_torch():
    """What make's bootstrap installed here (the configured index serves the CPU wheel)."""
    assert torch_choice.installed_cpu_torch(torch_choice.pinned_torch())
