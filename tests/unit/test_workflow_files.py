"""The shipped example workflows as files: every node on the canvas clear of every other, title bars included."""

import itertools
import json
from pathlib import Path

import pytest

WORKFLOWS = sorted((Path(__file__).resolve().parents[2] / "example_workflows").glob("*.json"))
TITLE_HEIGHT = 30  # LiteGraph draws the title above `pos`


def boxes(workflow: dict) -> dict:
    return {f"{n['id']} {n['type']}": (n["pos"][0], n["pos"][1] - TITLE_HEIGHT, n["pos"][0] + n["size"][0],
                                       n["pos"][1] + n["size"][1]) for n in workflow["nodes"]}


def test_there_are_workflows():
    assert {p.stem for p in WORKFLOWS} >= {"gooddrag", "adaptivedrag"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_no_two_nodes_overlap(path):
    placed = boxes(json.loads(path.read_text()))
    overlapping = [(a, b) for (a, (ax0, ay0, ax1, ay1)), (b, (bx0, by0, bx1, by1)) in itertools.combinations(placed.items(), 2)
                   if ax0 < bx1 and bx0 < ax1 and ay0 < by1 and by0 < ay1]
    assert overlapping == []


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_every_workflow_has_its_thumbnail(path):
    assert path.with_suffix(".jpg").is_file()
