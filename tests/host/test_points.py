"""Points from other packs: DragKit Points to Drag reads KJNodes' coordinate strings and plain [x, y]
lists into a drag, Drag to Points writes them back, and bad strings are refused naming the input."""

import json

import pytest


def points_graph(handles: str, targets: str, size=64, mask=False) -> dict:
    graph = {
        "image": {"class_type": "EmptyImage", "inputs": {"width": size, "height": size, "batch_size": 1, "color": 0}},
        "points": {"class_type": "DragKitPointsToDrag", "inputs": {"image": ["image", 0], "handles": handles, "targets": targets}},
        "back": {"class_type": "DragKitDragToPoints", "inputs": {"drag": ["points", 0]}},
        "report": {"class_type": "DragKitTestDragReport", "inputs": {"drag": ["points", 0], "handles": ["back", 0],
                                                                       "targets": ["back", 1]}},
    }
    if mask:
        graph["solid"] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": size, "height": size}}
        graph["points"]["inputs"]["mask"] = ["solid", 0]
    return graph


def test_kjnodes_and_plain_points_make_a_drag_and_come_back_out(client):
    handles = json.dumps([{"x": 10, "y": 12}, {"x": 30.5, "y": 40}])  # KJNodes' PointsEditor format
    run = client.run(points_graph(handles, "[[20, 12], [50, 41]]", mask=True))
    assert run.status == "success", run.describe()
    (drag,) = run.outputs["report"]["drag"]
    assert [p["handle"] for p in drag["pairs"]] == [[10, 12], [30.5, 40]]
    assert [p["target"] for p in drag["pairs"]] == [[20, 12], [50, 41]]
    assert (drag["width"], drag["height"]) == (64, 64) and drag["mask"] is not None
    (points,) = run.outputs["report"]["points"]
    assert json.loads(points["handles"]) == [{"x": 10, "y": 12}, {"x": 30.5, "y": 40}]
    assert json.loads(points["targets"]) == [{"x": 20, "y": 12}, {"x": 50, "y": 41}]


@pytest.mark.parametrize("handles, targets, name, words", [
    ("", "[[1, 2]]", "handles", "is empty"),
    ("[[1, 2]]", "not json", "targets", "is not JSON"),
    ('[{"x": 1}]', "[[1, 2]]", "handles", "must have x and y"),
    ("[[1, 2], [3, 4]]", "[[5, 6]]", "targets", "1 targets for 2 handles"),
    ("[[1, NaN]]", "[[5, 6]]", "handles", "finite"),
])
def test_bad_point_strings_are_refused_at_queue_time_naming_the_input(client, handles, targets, name, words):
    response = client.post_prompt(points_graph(handles, targets))
    assert response.status_code == 400, response.text
    # ComfyUI writes "<input> - <refusal>" for every input validate_inputs names
    refusals = {e["details"].split(" - ", 1)[1] for e in response.json()["node_errors"]["points"]["errors"]}
    assert any(r.startswith(f"{name}: ") and words in r for r in refusals), refusals


def test_a_point_outside_the_picture_fails_naming_the_input(client):
    run = client.run(points_graph("[[10, 10]]", "[[90, 10]]"))
    assert run.status == "error" and "targets: pair 1 target (90, 10) lies outside the 64×64 image" in run.describe()


def test_a_picture_below_the_smallest_size_is_refused_naming_the_image(client):
    run = client.run(points_graph("[[1, 1]]", "[[2, 2]]", size=16))
    assert run.status == "error" and "image: the picture is 16×16 pixels; DragKit needs at least 64×64" in run.describe()
