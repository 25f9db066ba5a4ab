"""The shared OpenVLA fixture (``../shared/fixtures/openvla-tiny`` beside the repository): a tiny random
checkpoint in OpenVLA-7B's exact format with golden outputs of OpenVLA's own code. Tests that need it
skip with the reason where the shared material is absent."""
from pathlib import Path

import pytest

OPENVLA_TINY = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "openvla-tiny"


@pytest.fixture(scope="session")
def openvla_tiny() -> Path:
    if not (OPENVLA_TINY / "golden.npz").is_file():
        pytest.skip(f"{OPENVLA_TINY} is absent (the shared material beside the repository holds it)")
    return OPENVLA_TINY
