"""The import rules of DESIGN.md §3, read from the source: core/ never imports ComfyUI; node files
import only the ground floor (nodes/host/, values, checks, previews), never each other; only
nodes/host/ touches ComfyUI's internals (node files may use the public `comfy_api`)."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMFY_INTERNALS = {"comfy", "comfy_extras", "folder_paths", "latent_preview", "server", "nodes", "execution"}
COMFY_API = {"comfy_api"}
GROUND_FLOOR = {"host", "values", "checks", "previews"}


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(level, dotted name) of every import in a file; level 0 is absolute, 1 is `.x`, 2 is `..x`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(0, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level and not module:  # `from . import host, values`
                found += [(node.level, alias.name) for alias in node.names]
            else:
                found.append((node.level, module))
    return found


def layout_violations(root: Path) -> list[str]:
    problems = []
    for path in sorted((root / "core").rglob("*.py")):
        for level, name in imports_of(path):
            top = name.split(".")[0]
            if level == 0 and top in COMFY_INTERNALS | COMFY_API:
                problems.append(f"{path.relative_to(root)} imports {name}: core/ never imports ComfyUI")
            if "nodes" in name.split(".") and level >= 1:
                problems.append(f"{path.relative_to(root)} imports {name}: core/ never imports nodes/")
    nodes = root / "nodes"
    for path in sorted(nodes.rglob("*.py")):
        relative = path.relative_to(nodes)
        in_host = relative.parts[0] == "host"
        floor = in_host or path.stem in GROUND_FLOOR
        for level, name in imports_of(path):
            top = name.split(".")[0]
            if level == 0 and top in COMFY_INTERNALS and not in_host:
                problems.append(f"nodes/{relative} imports {name}: only nodes/host/ touches ComfyUI's internals")
            # the nodes/ module an import names (level 1 from nodes/x.py, level 2 from nodes/host/x.py)
            nodes_level = 2 if in_host else 1
            if level != nodes_level or path.name == "__init__.py" and not in_host:
                continue
            target = top
            if in_host and target == "host":
                continue
            if floor and target not in GROUND_FLOOR:
                problems.append(f"nodes/{relative} imports nodes/{target}: the ground floor imports no node file")
            elif not floor and target not in GROUND_FLOOR:
                problems.append(f"nodes/{relative} imports nodes/{target}: node files import only "
                                f"{', '.join(sorted(GROUND_FLOOR))}")
    return problems


def test_the_code_follows_the_import_rules():
    assert layout_violations(ROOT) == []


def test_a_node_file_importing_another_node_file_is_caught(tmp_path):
    shutil.copytree(ROOT / "core", tmp_path / "core")
    shutil.copytree(ROOT / "nodes", tmp_path / "nodes")
    assert layout_violations(tmp_path) == []
    sampler = tmp_path / "nodes" / "sampler.py"
    sampler.write_text(sampler.read_text() + "\nfrom .drag import run_drag\n")
    (tmp_path / "nodes" / "values.py").write_text((tmp_path / "nodes" / "values.py").read_text() + "\nfrom . import lora\n")
    (tmp_path / "core" / "schedule.py").write_text("import folder_paths\n" + (tmp_path / "core" / "schedule.py").read_text())
    (tmp_path / "nodes" / "editor.py").write_text("import comfy.utils\n" + (tmp_path / "nodes" / "editor.py").read_text())
    problems = layout_violations(tmp_path)
    assert any("nodes/sampler.py imports nodes/drag" in p for p in problems), problems
    assert any("nodes/values.py imports nodes/lora" in p for p in problems), problems
    assert any("core/schedule.py imports folder_paths" in p for p in problems), problems
    assert any("nodes/editor.py imports comfy.utils" in p for p in problems), problems
    assert len(problems) == 4, problems

