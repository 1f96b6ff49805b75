"""The ComfyUI frontend in a Playwright page, with the few actions the editor tests need.

Pointer actions go through real mouse events at screen positions computed here from the editor
canvas's on-screen box and the image size (the image is letterboxed into the canvas), so a test
states image pixels and checks image pixels, whatever the node size and the graph zoom.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import requests

APP = "window.comfyAPI?.app?.app"
IMAGE_NAME = "dragkit_96x64.png"
IMAGE_SIZE = (96, 64)  # deliberately neither square nor the canvas's size
EDITOR_EXTENSION = "DragKit.Editor"
# Failures ComfyUI itself logs in an offline test setup: optional user files (user.css, saved
# workflows, templates), the favicon and api.comfy.org. Resource errors of DragKit's own requests
# (its scripts and docs, and the pictures it shows) are kept.
RESOURCE_ERROR = "Failed to load resource"
OWN_RESOURCES = ("/extensions/dragkit/", "/view?")


@dataclass
class ConsoleError:
    text: str
    url: str

    def is_foreign_resource(self, server_url: str) -> bool:
        own = any(self.url.startswith(server_url + path) or self.url.startswith(server_url + "/api" + path)
                  for path in OWN_RESOURCES)
        return self.text.startswith(RESOURCE_ERROR) and not own


def write_png(path: Path, width: int, height: int) -> None:
    """A gradient with a bright square, so that a screenshot shows where the points sit."""
    from PIL import Image

    image = Image.new("RGB", (width, height))
    image.putdata([(220, 200, 60) if 30 <= x < 54 and 20 <= y < 44 else (40 + x, 60 + y, 120)
                   for y in range(height) for x in range(width)])
    image.save(path)


class ComfyPage:
    def __init__(self, page, server, artifacts: Path, test_name: str) -> None:
        self.page = page
        self.server = server
        self.artifacts = artifacts
        self.test_name = test_name.replace("[", "-").replace("]", "")
        self.errors: list[ConsoleError] = []
        self.baseline = 0
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.errors.append(ConsoleError(f"uncaught: {error}", "")))

    def _on_console(self, message) -> None:
        if message.type == "error":
            self.errors.append(ConsoleError(message.text, message.location.get("url", "")))

    # --- the app ------------------------------------------------------------------------------

    def open(self, vue_nodes: bool) -> None:
        response = requests.post(f"{self.server.url}/api/settings/Comfy.VueNodes.Enabled", json=vue_nodes, timeout=10)
        response.raise_for_status()
        self.page.goto(self.server.url)
        self.wait_until_ready()
        assert self.evaluate(f"() => {APP}.extensionManager.setting.get('Comfy.VueNodes.Enabled')") is vue_nodes
        # ComfyUI logs a few errors of its own while starting offline; from here on, none is expected.
        self.baseline = len(self.errors)

    def wait_until_ready(self) -> None:
        """The app is up with DragKit registered and its start-up workflow (the default graph or
        the restored one) is loaded: newer frontends load it later, and it would replace a graph
        a test builds before that."""
        self.page.wait_for_function(
            f"""() => {APP}?.graph && {APP}.extensions?.some((e) => e.name === '{EDITOR_EXTENSION}')
                   && window.LiteGraph?.registered_node_types?.DragKitEditor && {APP}.canvas
                   && {APP}.graph.nodes.length > 0""",
            timeout=60_000,
        )

    def reload(self) -> None:
        self.page.reload()
        self.wait_until_ready()
        self.baseline = len(self.errors)

    def evaluate(self, script: str, arg=None):
        return self.page.evaluate(script, arg)

    def build_graph(self, image: str, zoom: float = 1.15) -> int:
        """Load Image → DragKit Editor → (mask) MaskToImage → PreviewImage; returns the editor's node id."""
        node_id = self.evaluate(
            """([image, zoom]) => {
              const app = window.comfyAPI.app.app;
              app.graph.clear();
              const add = (type, pos) => {
                const node = window.LiteGraph.createNode(type);
                node.pos = pos;
                app.graph.add(node);
                return node;
              };
              const load = add("LoadImage", [20, 40]);
              load.widgets.find((w) => w.name === "image").value = image;
              const editor = add("DragKitEditor", [380, 40]);
              editor.setSize([460, 540]);
              const toImage = add("MaskToImage", [880, 40]);
              const preview = add("PreviewImage", [880, 160]);
              load.connect(0, editor, 0);
              editor.connect(1, toImage, 0);
              toImage.connect(0, preview, 0);
              app.canvas.ds.scale = zoom;
              app.canvas.ds.offset = [30, 110];
              app.canvas.setDirty(true, true);
              return editor.id;
            }""",
            [image, zoom],
        )
        self.wait_for_image(node_id)
        return node_id

    def wait_for_image(self, node_id: int, url_part: str = "type=input") -> None:
        self.page.wait_for_function(
            f"""() => {{
              const editor = {APP}.graph.getNodeById({node_id})?.dragkitEditor;
              return editor?.image?.complete && editor.imageUrl.includes({json.dumps(url_part)});
            }}""",
            timeout=30_000,
        )
        self.page.wait_for_timeout(200)  # one layout pass of the node after the picture arrived

    def editor_nodes(self) -> list[int]:
        return self.evaluate(f"() => {APP}.graph.nodes.filter((n) => n.type === 'DragKitEditor').map((n) => n.id)")

    def drag_data(self, node_id: int) -> str:
        return self.evaluate(f"() => {APP}.graph.getNodeById({node_id}).widgets.find((w) => w.name === 'drag_data').value")

    def editor_view(self, node_id: int) -> dict:
        """What the editor shows: its own JSON of the state on screen, and its status line."""
        return self.evaluate(
            f"""() => {{
              const editor = {APP}.graph.getNodeById({node_id}).dragkitEditor;
              return {{ json: editor.state.toJSON(), value: editor.value, pairs: editor.state.pairs.length,
                        status: editor.status.textContent, tool: editor.tool, brush: editor.brushSize,
                        pending: editor.pending }};
            }}"""
        )

    def graph_view(self) -> dict:
        return self.evaluate(f"() => ({{ offset: [...{APP}.canvas.ds.offset], scale: {APP}.canvas.ds.scale }})")

    def node_position(self, node_id: int) -> list[float]:
        return self.evaluate(f"() => [...{APP}.graph.getNodeById({node_id}).pos]")

    def export_workflow(self) -> dict:
        return self.evaluate(f"async () => JSON.parse(JSON.stringify((await {APP}.graphToPrompt()).workflow))")

    def api_prompt(self) -> dict:
        """The API prompt the frontend makes of the graph (graphToPrompt), without queueing it."""
        return self.evaluate(f"async () => JSON.parse(JSON.stringify((await {APP}.graphToPrompt()).output))")

    def load_workflow(self, workflow: dict) -> None:
        self.evaluate(f"(workflow) => {APP}.loadGraphData(workflow)", workflow)

    def import_workflow_file(self, path: Path) -> None:
        """The real import path: the app's file input, as 'Open workflow' uses it."""
        self.page.locator("#comfy-file-input").set_input_files(str(path))

    # --- pointer and keyboard ---------------------------------------------------------------------

    def canvas_box(self, node_id: int) -> dict:
        return self.evaluate(
            f"""() => {{
              const editor = {APP}.graph.getNodeById({node_id}).dragkitEditor;
              const box = editor.canvas.getBoundingClientRect();
              return {{ x: box.x, y: box.y, width: box.width, height: box.height,
                        imageWidth: editor.state.width, imageHeight: editor.state.height }};
            }}"""
        )

    def screen_point(self, node_id: int, x: float, y: float) -> tuple[float, float]:
        """The screen position of the centre of image pixel (x, y)."""
        box = self.canvas_box(node_id)
        scale = min(box["width"] / box["imageWidth"], box["height"] / box["imageHeight"])
        left = box["x"] + (box["width"] - box["imageWidth"] * scale) / 2
        top = box["y"] + (box["height"] - box["imageHeight"] * scale) / 2
        return left + (x + 0.5) * scale, top + (y + 0.5) * scale

    def editor_has_focus(self, node_id: int) -> bool:
        return self.evaluate(f"() => {APP}.graph.getNodeById({node_id}).dragkitEditor.element.contains(document.activeElement)")

    def select_editor(self, node_id: int) -> None:
        """As a user starts editing: one click on the picture, which only selects the editor."""
        if not self.editor_has_focus(node_id):
            box = self.canvas_box(node_id)
            self.page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            assert self.editor_has_focus(node_id)

    def click_pixel(self, node_id: int, x: float, y: float, button: str = "left") -> None:
        self.select_editor(node_id)
        self.page.mouse.click(*self.screen_point(node_id, x, y), button=button)

    def drag_through(self, node_id: int, pixels: list[tuple[float, float]], button: str = "left") -> None:
        self.select_editor(node_id)
        self.page.mouse.move(*self.screen_point(node_id, *pixels[0]))
        self.page.mouse.down(button=button)
        for pixel in pixels[1:]:
            self.page.mouse.move(*self.screen_point(node_id, *pixel), steps=4)
        self.page.mouse.up(button=button)

    def press(self, key: str) -> None:
        """A key while the editor has the keyboard focus (clicking the image gives it the focus)."""
        self.page.keyboard.press(key)

    def editor_element(self, node_id: int):
        return self.page.evaluate_handle(f"() => {APP}.graph.getNodeById({node_id}).dragkitEditor.element").as_element()

    # --- queueing --------------------------------------------------------------------------------

    def forget_cached_results(self) -> None:
        """ComfyUI re-runs only changed nodes: drop its cache so that the next queue runs every node
        (an earlier test may have queued the same graph)."""
        requests.post(f"{self.server.url}/free", json={"free_memory": True}, timeout=10).raise_for_status()
        time.sleep(3.0)  # the prompt worker takes the flag when it next wakes (1 s was too short on a loaded machine)

    def queue(self) -> tuple[dict, str]:
        """Queues through the app; returns the /prompt body as sent and the id the backend gave it."""
        with self.page.expect_response(lambda r: r.url.endswith("/api/prompt") and r.request.method == "POST") as sent:
            self.evaluate(f"() => {APP}.queuePrompt(0, 1)")
        response = sent.value
        assert response.status == 200, f"/prompt refused the prompt: {response.text()}"
        return response.request.post_data_json, response.json()["prompt_id"]

    def wait_for_history(self, prompt_id: str, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = requests.get(f"{self.server.url}/history/{prompt_id}", timeout=10).json().get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None:
                return entry
            time.sleep(0.3)
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout} s:\n{self.server.log()}")

    # --- evidence --------------------------------------------------------------------------------

    def screenshot(self, tag: str, node_id: int | None = None) -> Path:
        path = self.artifacts / f"{self.test_name}-{tag}.png"
        if node_id is None:
            self.page.screenshot(path=str(path))
        else:
            self.editor_element(node_id).screenshot(path=str(path))
        return path

    def assert_no_console_errors(self) -> None:
        relevant = [
            e for i, e in enumerate(self.errors)
            if not e.is_foreign_resource(self.server.url) and (i >= self.baseline or "dragkit" in e.text.lower())
        ]
        assert not relevant, "browser console errors:\n" + "\n".join(f"{e.text} ({e.url})" for e in relevant)
