"""The pack as users install it: `pip install -r requirements.txt` into a Python that has torch leaves
torch alone; comfy-cli's own Registry checks pass; its archive (`comfy node pack`) leaves out what
users' ComfyUI never loads; and that archive unpacked into a fresh ComfyUI's custom_nodes/ (a real
folder, no link to the checkout) loads every DragKit node."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import requests

from harness.comfy_inprocess import comfyui_path, import_comfy, in_the_current_hosts_pass_only
from harness.comfy_server import ROOT, prepare_base_directory, running_server

pytestmark = in_the_current_hosts_pass_only("packaging is checked once; the archive loads on the current ComfyUI")
LEFT_OUT = ("tests/", "benchmarks/", "harness/", "scripts/", ".ci/")


def comfy_cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    cli = os.environ.get("DRAGKIT_COMFY_CLI")
    if not cli:
        pytest.fail("comfy-cli is not provisioned: run the tests through `bash scripts/test.sh`")
    return subprocess.run([cli, "--skip-prompt", "--no-enable-telemetry", "node", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=300, env=dict(os.environ, HOME=str(home)))


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("home")
    packed = ROOT / "node.zip"
    packed.unlink(missing_ok=True)
    run = comfy_cli(home, "pack")
    assert run.returncode == 0 and packed.is_file(), run.stdout + run.stderr
    target = tmp_path_factory.mktemp("archive") / "dragkit.zip"
    packed.replace(target)
    return target


def dragkit_node_ids() -> set[str]:
    import_comfy()
    from dragkit.nodes import DragKitExtension

    return {node.define_schema().node_id for node in asyncio.run(DragKitExtension().get_node_list())}


def test_comfy_cli_validates_the_registry_metadata(tmp_path):
    run = comfy_cli(tmp_path, "validate")
    assert run.returncode == 0 and "checks passed" in run.stdout + run.stderr, run.stdout + run.stderr


def test_the_archive_holds_the_pack_and_leaves_out_tests_tools_and_caches(archive):
    names = zipfile.ZipFile(archive).namelist()
    assert not [n for n in names if n.startswith(LEFT_OUT) or "__pycache__" in n or n.endswith(".pyc")], names
    for needed in ("__init__.py", "pyproject.toml", "requirements.txt", "README.md", "nodes/host/denoiser.py",
                   "core/methods/gooddrag.py", "web/dragkit_editor.js", "web/editor/drawing.js",
                   "example_workflows/gooddrag.json", "example_workflows/gooddrag.jpg"):
        assert needed in names, needed
    assert {f"web/docs/{node_id}.md" for node_id in dragkit_node_ids()} <= set(names)


def test_the_archive_unpacked_into_custom_nodes_loads_every_node(archive, tmp_path, monkeypatch):
    base = prepare_base_directory(tmp_path / "comfy", testing_nodes=False, pack=None)
    folder = base / "custom_nodes" / "dragkit"
    zipfile.ZipFile(archive).extractall(folder)
    # the server sees the unpacked copy only, not the checkout through the test's PYTHONPATH
    root = os.environ.get("DRAGKIT_IMPORT_ROOT", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                                     if p and p != root))
    with running_server(comfyui_path(), base) as server:
        info = requests.get(f"{server.url}/object_info", timeout=60).json()
        log = server.log()
    missing = dragkit_node_ids() - set(info)
    assert not missing, f"not loaded from the archive: {sorted(missing)}\n{log}"
    assert not folder.is_symlink() and "dragkit" in info["DragKitEditor"]["python_module"]


def test_pip_install_of_the_requirements_keeps_the_torch_already_there(tmp_path):
    """A fresh environment whose torch is ComfyUI's (a torch 2.15.0 record, as pip sees an installed
    wheel): resolving requirements.txt installs no torch, no second torch and no sam2."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    site = next((tmp_path / "venv" / "lib").glob("python3*/site-packages"))
    record = site / "torch-2.15.0.dist-info"
    record.mkdir()
    (record / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 2.15.0\n")
    (record / "INSTALLER").write_text("pip\n")
    (record / "RECORD").write_text("")
    report = tmp_path / "report.json"
    run = subprocess.run([sys.executable, "-m", "pip", "--python", str(tmp_path / "venv" / "bin" / "python"), "install",
                          "--dry-run", "--quiet", "--report", str(report), "-r", str(ROOT / "requirements.txt")],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    wanted = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    assert {"diffusers", "peft", "scikit-image"} <= wanted, wanted
    assert not wanted & {"torch", "torchvision", "sam2"} and not any(n.startswith("nvidia-") for n in wanted), wanted
