"""requirements.txt (what ComfyUI-Manager and users pip-install) and pyproject.toml (the Registry's
metadata) declare the same dependencies; sam2 is an optional extra, never a plain requirement."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def requirement_lines() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def test_requirements_and_pyproject_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert sorted(requirement_lines()) == sorted(project["dependencies"])
    assert project["optional-dependencies"]["sam2"] == ["sam2>=1.0"]


def test_nothing_required_pulls_torch_or_sam2():
    names = {line.split(">")[0].split("=")[0].split("<")[0].strip().lower() for line in requirement_lines()}
    assert not names & {"torch", "torchvision", "torchaudio", "sam2"}, names
