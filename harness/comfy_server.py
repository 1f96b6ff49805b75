"""A real ComfyUI server on CPU with DragKit loaded, and a small client for its HTTP/websocket API."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests
import websocket

ROOT = Path(__file__).resolve().parents[1]
TESTING_NODES = ROOT / "tests" / "host" / "testing_nodes"  # test-only nodes, never shipped


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_base_directory(base: Path, testing_nodes: bool = True, pack: Path | None = ROOT) -> Path:
    """models/, input/, output/ and custom_nodes/ (DragKit linked from `pack`, the checkout by default:
    None leaves custom_nodes/dragkit to the caller; and the test-only nodes unless told not to: a
    user's ComfyUI never lists them) for one server."""
    custom = base / "custom_nodes"
    custom.mkdir(parents=True, exist_ok=True)
    packs = {"dragkit_testing": TESTING_NODES if testing_nodes else None}
    if pack is not None:
        packs["dragkit"] = pack
    for name, target in packs.items():
        link = custom / name
        if target is None:
            if link.is_symlink():
                link.unlink()
        elif not link.exists():
            link.symlink_to(target, target_is_directory=True)
    for sub in ("models/checkpoints", "models/loras", "input", "output", "user"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    return base


class ComfyServer:
    """`main.py` (with `--cpu` unless told otherwise) on a free loopback port; always stopped by `stop()`."""

    def __init__(self, comfyui: Path, base: Path, extra_args: tuple[str, ...] = (), cpu: bool = True,
                 port: int | None = None, threads: int | None = None) -> None:
        self.port = port or free_port()
        self.base = base
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = base / "server.log"
        command = [sys.executable, "main.py", *(["--cpu"] if cpu else []), "--listen", "127.0.0.1", "--port", str(self.port),
                   "--base-directory", str(base), "--disable-auto-launch", *extra_args]
        self._log = open(self.log_path, "w")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if threads:  # servers sharing the cores: torch's spinning threads would oversubscribe them
            env["OMP_NUM_THREADS"] = str(threads)
        self.process = subprocess.Popen(command, cwd=comfyui, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.process.returncode}:\n{self.log()}")
            try:
                if requests.get(f"{self.url}/system_stats", timeout=2).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"ComfyUI did not answer /system_stats within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-6000:]

    def is_alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@contextlib.contextmanager
def running_server(comfyui: Path, base: Path, extra_args: tuple[str, ...] = (), cpu: bool = True,
                   port: int | None = None, threads: int | None = None):
    """A ComfyServer that has answered /system_stats, stopped however the block ends."""
    server = ComfyServer(comfyui, base, extra_args, cpu, port, threads)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


class PromptRefused(AssertionError):
    """/prompt did not queue the prompt (e.g. a node refused an input); the message has ComfyUI's answer."""


@dataclass
class Run:
    """What one queued prompt did, from the websocket messages."""

    prompt_id: str
    status: str = "pending"  # success | error | interrupted
    executed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    error: dict | None = None
    outputs: dict = field(default_factory=dict)
    progress: list[tuple[str, int, int]] = field(default_factory=list)
    started: dict[str, float] = field(default_factory=dict)  # node → time.monotonic() when it began
    first_progress: dict[str, float] = field(default_factory=dict)  # node → time of its first progress message
    finished: float | None = None  # time.monotonic() at the final message

    def node_seconds(self) -> dict[str, float]:
        """Each executed node's wall time: from its start to the next node's, the last to the end."""
        ordered = sorted(self.started.items(), key=lambda item: item[1])
        ends = [t for _, t in ordered[1:]] + [self.finished if self.finished is not None else ordered[-1][1]]
        return {node: end - start for (node, start), end in zip(ordered, ends)}

    def describe(self) -> str:
        """The error as ComfyUI reported it, for assertion messages."""
        if not self.error:
            return self.status
        trace = "".join(self.error.get("traceback", []))
        return f"{self.error.get('exception_type')}: {self.error.get('exception_message')}\n{trace}"


class ComfyClient:
    def __init__(self, url: str) -> None:
        self.url = url
        self.client_id = uuid.uuid4().hex
        self.ws = websocket.create_connection(f"{url.replace('http', 'ws', 1)}/ws?clientId={self.client_id}", timeout=600)

    def close(self) -> None:
        self.ws.close()

    def object_info(self) -> dict:
        return requests.get(f"{self.url}/object_info", timeout=30).json()

    def post_prompt(self, prompt: dict) -> requests.Response:
        # json.dumps writes NaN as the JS token, as a browser's JSON would not; tests send it on purpose.
        body = json.dumps({"prompt": prompt, "client_id": self.client_id})
        return requests.post(f"{self.url}/prompt", data=body, headers={"Content-Type": "application/json"}, timeout=60)

    def interrupt(self) -> None:
        requests.post(f"{self.url}/interrupt", timeout=10)

    def cancel(self, prompt_id: str) -> None:
        """Take a queued prompt off the queue, or stop it if it already runs."""
        requests.post(f"{self.url}/queue", json={"delete": [prompt_id]}, timeout=10)
        requests.post(f"{self.url}/interrupt", json={"prompt_id": prompt_id}, timeout=10)

    def run(self, prompt: dict, on_progress=None, timeout: float = 600, whole: bool = False) -> Run:
        """Queue `prompt`, follow it to the end; `on_progress(client, message)` sees progress messages.
        With `whole`, a prompt ComfyUI would run only in part (an output node refused) is refused."""
        response = self.post_prompt(prompt)
        if response.status_code != 200:
            raise PromptRefused(f"/prompt answered {response.status_code}: {response.text}")
        if whole and response.json().get("node_errors"):
            self.cancel(response.json()["prompt_id"])  # ComfyUI queued the valid rest: take it back
            details = {e.get("details") or e.get("message") for node in response.json()["node_errors"].values()
                       for e in node.get("errors", [])}
            raise PromptRefused("; ".join(sorted(map(str, details))))
        run = Run(prompt_id=response.json()["prompt_id"])
        deadline = time.monotonic() + timeout
        while run.status == "pending":
            if time.monotonic() > deadline:
                raise TimeoutError(f"prompt {run.prompt_id} did not finish within {timeout} s")
            raw = self.ws.recv()
            if not isinstance(raw, str):
                continue  # binary preview frames
            self._follow(run, json.loads(raw), on_progress)
        run.outputs = self._history_outputs(run.prompt_id)
        return run

    def _history_outputs(self, prompt_id: str) -> dict:
        """The prompt's outputs; the server writes its history entry just after the final message."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            history = requests.get(f"{self.url}/history/{prompt_id}", timeout=30).json()
            if prompt_id in history:
                return history[prompt_id].get("outputs", {})
            time.sleep(0.05)
        raise TimeoutError(f"prompt {prompt_id} never appeared in /history")

    def _follow(self, run: Run, message: dict, on_progress) -> None:
        kind, data = message.get("type"), message.get("data", {})
        if data.get("prompt_id") != run.prompt_id:
            return
        if kind == "executing" and data.get("node") is not None:
            run.executed.append(data["node"])
            run.started.setdefault(data["node"], time.monotonic())
        elif kind == "execution_cached":
            run.cached.extend(data.get("nodes", []))
        elif kind == "progress":
            run.progress.append((data.get("node"), data.get("value"), data.get("max")))
            run.first_progress.setdefault(data.get("node"), time.monotonic())
            if on_progress is not None:
                on_progress(self, data)
        elif kind == "execution_success":
            run.status = "success"
        elif kind == "execution_error":
            run.status, run.error = "error", data
        elif kind == "execution_interrupted":
            run.status = "interrupted"
        if run.status != "pending":
            run.finished = time.monotonic()
