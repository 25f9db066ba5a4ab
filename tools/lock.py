"""The environment lock: every package of ``make run``'s environment (and of the ``test`` extra) at
an exact version with its hashes, for Linux x86-64 and Python 3.11.

    python tools/lock.py            # `make lock`: regenerate the lock files from pyproject.toml
    python tools/lock.py --upgrade  # the same, taking the newest versions the ranges allow
    python tools/lock.py --check    # offline: do the lock files still match pyproject.toml?

Inputs: ``[project] dependencies``, the ``test`` extra and ``[build-system] requires`` of
pyproject.toml, and the hand pins of requirements/constraints.txt (torch, transformers, peft,
...). Outputs, written by ``uv pip compile --generate-hashes``:

- requirements/lock.txt       the CPU default (torch as its CPU wheel, ``+cpu``) and the build
                              backend the editable install uses (setuptools, wheel);
- requirements/lock-test.txt  what the ``test`` extra adds (resolved together with lock.txt, so
                              the two never disagree on a shared package);
- requirements/uv.txt         the installer the bootstrap uses (uv, at the version of constraints.txt);
- environment.yml             conda's view of the same pins.

Regenerating keeps every locked version the inputs still allow (uv reads the old lock as its
preferences); ``--upgrade`` drops them. Each lock file's header records a hash of the inputs
(``inputs-sha256``): ``--check``, the bootstrap and tests/test_bootstrap.py compare it with
pyproject.toml and constraints.txt, so an edit of either without ``make lock`` is caught.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = Path("requirements/lock.txt")
TEST_LOCK = Path("requirements/lock-test.txt")
UV_LOCK = Path("requirements/uv.txt")  # the installer itself, which pip installs first
CONSTRAINTS = Path("requirements/constraints.txt")
ENVIRONMENT = Path("environment.yml")
PYTHON_VERSION = "3.11"  # any 3.11.x: a package needing a newer patch release is not taken
PLATFORM = "x86_64-manylinux_2_28"  # the manylinux level of the CPU torch wheel
HASH_LINE = "# inputs-sha256: "
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def say(message: str) -> None:
    print(f"[lock] {message}", file=sys.stderr)


# ------------------------------------------------------------------------------ inputs
def constraint_lines(root: Path = ROOT) -> list[str]:
    return [line.split("#", 1)[0].strip() for line in (root / CONSTRAINTS).read_text().splitlines()
            if line.split("#", 1)[0].strip()]


def inputs(root: Path = ROOT) -> dict:
    """What the lock is made from (all of it, and nothing else)."""
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    project = pyproject["project"]
    return {"requires-python": project.get("requires-python"), "dependencies": project["dependencies"],
            "test": project.get("optional-dependencies", {}).get("test", []),
            "build-system": pyproject["build-system"]["requires"], "constraints": constraint_lines(root),
            "python": PYTHON_VERSION, "platform": PLATFORM}


def inputs_hash(root: Path = ROOT) -> str:
    return hashlib.sha256(json.dumps(inputs(root), sort_keys=True).encode()).hexdigest()


def pinned_torch(root: Path = ROOT) -> str:
    """The torch version of requirements/constraints.txt (without a local label)."""
    return next(line.split("==", 1)[1] for line in constraint_lines(root) if line.startswith("torch=="))


# ------------------------------------------------------------------------------ reading a lock
def blocks(text: str) -> list[str]:
    """A requirements file as one block per package: its ``name==version \\`` line, hashes and annotations."""
    out: list[str] = []
    for line in text.splitlines(keepends=True):
        if re.match(r"[A-Za-z0-9]", line):
            out.append(line)
        elif out:
            out[-1] += line
    return out


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    """{canonical name: version} of a lock file."""
    found = {}
    for block in blocks(path.read_text()):
        name, _, version = block.split()[0].partition("==")
        found[canonical(name)] = version
    return found


def recorded_hash(path: Path) -> str | None:
    for line in path.read_text().splitlines():
        if line.startswith(HASH_LINE):
            return line[len(HASH_LINE):].strip()
    return None


def check(root: Path = ROOT) -> list[str]:
    """One line per lock file that does not match the inputs (none: the lock is current)."""
    want, problems = inputs_hash(root), []
    for path in (LOCK, TEST_LOCK, UV_LOCK, ENVIRONMENT):
        if not (root / path).is_file():
            problems.append(f"{path} is missing: run `make lock`")
        elif recorded_hash(root / path) != want:
            problems.append(f"{path} was made from another pyproject.toml / {CONSTRAINTS}: run `make lock`")
    return problems


def without(path: Path, names: set[str]) -> str:
    """The lock file's text without the packages ``names`` (the CUDA bootstrap drops the CPU torch)."""
    return "".join(b for b in blocks(path.read_text()) if canonical(b.split("==", 1)[0]) not in names)


# ------------------------------------------------------------------------------ writing it
def header(what: str, digest: str, hashes: bool = True) -> str:
    return (f"# {what}: exact versions{' with hashes' if hashes else ''} for Linux x86-64, Python {PYTHON_VERSION}.\n"
            "# Made by `make lock` (tools/lock.py) from pyproject.toml and requirements/constraints.txt: do not edit.\n"
            f"{HASH_LINE}{digest}\n")


def find_uv() -> str:
    uv = shutil.which("uv") or str(Path(sys.prefix) / "bin" / "uv")
    if not Path(uv).exists():
        raise SystemExit("[lock] error: `make lock` needs uv; `make env` installs it in .venv (requirements/uv.txt)")
    return uv


def torch_source(pin: str) -> list[str]:
    """uv arguments under which the CPU wheel torch==<pin>+cpu can be found, or exit naming the fix."""
    sys.path.insert(0, str(ROOT / "tools"))
    import torch_choice  # noqa: E402 - a sibling script, not a package

    args = torch_choice.cpu_wheel_source(pin)
    if args is None:
        raise SystemExit(f"[lock] error: no CPU wheel torch=={pin}+cpu found (pip's find-links folders, "
                         f"{torch_choice.CPU_INDEX}): set TORCH_INDEX_URL to an index that has it")
    return args


def compile_(uv: str, requirements: Path, constraints: list[Path], output: Path, extra: list[str]) -> None:
    cmd = [uv, "pip", "compile", requirements.name, "-o", output.name, "--generate-hashes", "--no-header",
           "--python-version", PYTHON_VERSION, "--python-platform", PLATFORM, "--quiet", *extra]
    for c in constraints:
        cmd += ["-c", c.name]
    done = subprocess.run(cmd, cwd=requirements.parent, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"[lock] error: uv could not resolve {requirements.name}:\n{done.stderr.strip()}")


def environment_yml(runtime: dict[str, str], test: dict[str, str], digest: str) -> str:
    lines = [f"      - {name}=={version}" for name, version in sorted({**runtime, **test}.items())]
    return (header("Conda's view of requirements/lock.txt + lock-test.txt", digest, hashes=False) +
            "#   conda env create -f environment.yml && conda activate tgrpo   (from the repository root)\n"
            "# Hashes stay in the lock files (pip refuses an editable install beside hashes); the versions are\n"
            "# the same. Headless rendering still needs the system's Mesa EGL/OSMesa libraries (see README).\n"
            "# torch is the CPU build (`+cpu`, from PyTorch's CPU index): for CUDA, drop the torch line and the\n"
            "# --extra-index-url line and install torch==" + runtime["torch"].split("+")[0] + " from PyPI.\n"
            "name: tgrpo\nchannels:\n  - conda-forge\ndependencies:\n"
            f"  - python={PYTHON_VERSION}\n  - pip\n  - pip:\n"
            f"      - --extra-index-url {CPU_INDEX}\n" + "\n".join(lines) + "\n      - -e .\n")


def lock(upgrade: bool = False) -> None:
    uv, pin, digest = find_uv(), pinned_torch(), inputs_hash()
    spec = inputs()
    source = torch_source(pin)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # file names as they appear in the "# via" annotations
        (tmp / "pyproject-dependencies.in").write_text("\n".join(spec["dependencies"] + spec["build-system"]) + "\n")
        (tmp / "pyproject-test.in").write_text("-r pyproject-dependencies.in\n" + "\n".join(spec["test"]) + "\n")
        (tmp / "installer.in").write_text("uv\n")
        (tmp / "constraints.txt").write_text("\n".join(spec["constraints"] + [f"torch=={pin}+cpu"]) + "\n")
        runtime, everything = tmp / "lock.txt", tmp / "everything.txt"
        if not upgrade and (ROOT / LOCK).is_file():  # uv keeps the versions of an existing output file
            runtime.write_text((ROOT / LOCK).read_text())
        compile_(uv, tmp / "pyproject-dependencies.in", [tmp / "constraints.txt"], runtime, source)
        compile_(uv, tmp / "pyproject-test.in", [tmp / "constraints.txt", runtime], everything, source)
        compile_(uv, tmp / "installer.in", [tmp / "constraints.txt"], tmp / "uv.txt", [])
        installer = (tmp / "uv.txt").read_text()
        runtime_blocks = blocks(runtime.read_text())
        locked = {canonical(b.split("==", 1)[0]) for b in runtime_blocks}
        test_blocks = [b for b in blocks(everything.read_text()) if canonical(b.split("==", 1)[0]) not in locked]
    (ROOT / LOCK).write_text(header("Every package of `make run`'s environment", digest) + "".join(runtime_blocks))
    (ROOT / TEST_LOCK).write_text(header("What the `test` extra adds to requirements/lock.txt (`make test`)", digest)
                                  + "".join(test_blocks))
    (ROOT / UV_LOCK).write_text(header("The installer tools/bootstrap.sh uses", digest) + "".join(blocks(installer)))
    (ROOT / ENVIRONMENT).write_text(environment_yml(pins(ROOT / LOCK), pins(ROOT / TEST_LOCK), digest))
    say(f"{LOCK}: {len(runtime_blocks)} packages; {TEST_LOCK}: {len(test_blocks)} more; {ENVIRONMENT}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="tools/lock.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="only compare the lock files with their inputs (offline)")
    p.add_argument("--upgrade", action="store_true", help="newest versions the ranges allow, not the locked ones")
    p.add_argument("--without", nargs="+", metavar="NAME", help="print requirements/lock.txt without these packages")
    a = p.parse_args(argv)
    if a.without:
        sys.stdout.write(without(ROOT / LOCK, {canonical(n) for n in a.without}))
    elif a.check:
        problems = check()
        for line in problems:
            say(line)
        raise SystemExit(1 if problems else 0)
    else:
        lock(upgrade=a.upgrade)


if __name__ == "__main__":
    main()
