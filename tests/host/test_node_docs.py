"""Every DragKit node has a help page (web/docs/<node id>.md, what the frontend's node help shows), and
its inputs table lists every input with the default the node really has."""

import asyncio
from pathlib import Path

import pytest

from harness.comfy_inprocess import import_comfy

DOCS = Path(__file__).resolve().parents[2] / "web" / "docs"


def registered_nodes():
    import_comfy()
    from dragkit.nodes import DragKitExtension

    return asyncio.run(DragKitExtension().get_node_list())


def input_rows(page: str) -> dict[str, list[str]]:
    """The inputs table's rows by input name: {name: cells}."""
    section = page.split("## Inputs", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| `"):
            rows[cells[0].split("`")[1]] = cells
    return rows


def documented_default(value) -> str:
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def test_every_node_has_a_help_page_with_every_input_and_its_default():
    nodes = registered_nodes()
    from comfy_api.v0_0_2 import io

    for node in nodes:
        schema = node.define_schema()
        page_path = DOCS / f"{schema.node_id}.md"
        assert page_path.is_file(), f"{schema.node_id} has no help page {page_path.name}"
        page = page_path.read_text()
        assert page.startswith(f"# {schema.display_name}\n"), schema.node_id
        if schema.node_id == "DragKitEditor":  # the widget's page: tools and keys, inputs as a list
            assert all(f"`{spec.id}`" in page for spec in schema.inputs)
            continue
        rows = input_rows(page)
        assert list(rows) == [spec.id for spec in schema.inputs], (schema.node_id, list(rows))
        for spec in schema.inputs:
            if isinstance(spec, (io.Int.Input, io.Float.Input, io.Combo.Input, io.Boolean.Input)) and spec.default is not None:
                assert rows[spec.id][2] == documented_default(spec.default), (schema.node_id, spec.id, rows[spec.id])
            assert rows[spec.id][4], f"{schema.node_id}.{spec.id} has no meaning in its help page"


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda p: p.stem)
def test_every_help_page_belongs_to_a_node(page):
    assert page.stem in {node.define_schema().node_id for node in registered_nodes()}
