"""Fixtures for browser tests: a real ComfyUI with its shipped frontend, driven by Debian's Chromium.

Chromium is Debian's package (scripts/setup.sh installs it); Playwright (PyPI, tests/requirements.txt)
only drives it, it never downloads a browser.
"""

import json
import os
import shutil
from pathlib import Path

import pytest

from harness.comfy_inprocess import comfyui_path
from harness.comfy_server import ROOT, prepare_base_directory, running_server

from comfy_page import IMAGE_NAME, IMAGE_SIZE, ComfyPage, write_png

ARTIFACTS = ROOT / "artifacts" / "browser"
# A fresh user would get the template browser on first load; tests start from an empty graph.
USER_SETTINGS = {"Comfy.TutorialCompleted": True}


def chromium_executable() -> str:
    path = os.environ.get("DRAGKIT_CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail("Debian's chromium is not installed; run `bash scripts/setup.sh` (or set DRAGKIT_CHROMIUM)")
    return path


# Module scope: the server and the browser are gone before other test folders run (Playwright's sync
# API keeps an event loop running in this thread while it is open, which asyncio.run() refuses).
@pytest.fixture(scope="module")
def browser_server(tmp_path_factory):
    base = prepare_base_directory(tmp_path_factory.mktemp("comfy_browser"))
    write_png(base / "input" / IMAGE_NAME, *IMAGE_SIZE)
    settings = base / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps(USER_SETTINGS))
    with running_server(comfyui_path(), base) as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable(), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(params=[False, True], ids=["canvas-nodes", "vue-nodes"])
def vue_nodes(request):
    """Both of the frontend's renderers: LiteGraph canvas nodes and Vue nodes (Nodes 2.0)."""
    return request.param


@pytest.fixture
def comfy_page(browser, browser_server, vue_nodes, request):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 950})
    page = ComfyPage(context.new_page(), browser_server, ARTIFACTS, request.node.name)
    try:
        page.open(vue_nodes=vue_nodes)
        yield page
        page.assert_no_console_errors()
    finally:
        context.close()
        assert browser_server.is_alive(), f"the server died:\n{browser_server.log()}"
