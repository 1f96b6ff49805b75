"""Benchmark loaders on the shipped data (../shared/data): every sample, points, masks; pickles that would run code."""

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dragkit.core.bench import BenchmarkDataError, load_drag100, load_dragbench, read_meta_data

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not beside the checkout")


def points_in(path: Path) -> list:
    return json.loads(path.read_text())["points"]


@needs_data
def test_drag100_reads_all_hundred_samples_with_their_points_and_masks():
    samples = load_drag100(DATA / "Drag100")
    assert len(samples) == 100
    assert sum(s.drag.pair_count for s in samples) == 242  # Drag100's published pair count
    for sample in samples:
        folder = DATA / "Drag100" / sample.name
        points = points_in(folder / "points.json")
        assert sample.drag.pair_count == len(points) // 2
        assert sample.drag.handles[0] == pytest.approx(points[0]) and sample.drag.targets[-1] == pytest.approx(points[-1])
        mask = np.asarray(Image.open(folder / "mask.png").convert("L")) > 0
        assert sample.image.shape == (*mask.shape, 3) and sample.image.shape[1] == 512
        assert np.array_equal(sample.drag.editable_mask(), mask) or not mask.any()
        assert sample.prompt == ""


@needs_data
def test_dragbench_reads_every_sample_from_json_and_from_the_pickle_alike(tmp_path):
    samples = load_dragbench(DATA / "DragBench")
    folders = sorted(p.parent for p in (DATA / "DragBench").glob("*/*/original_image.png"))
    assert len(samples) == len(folders) == 20
    assert {s.name.split("/")[0] for s in samples} == {p.name for p in (DATA / "DragBench").iterdir() if p.is_dir()}
    # the released zip has only meta_data.pkl: the same samples from it
    for folder in folders:
        copy = tmp_path / folder.parent.name / folder.name
        copy.mkdir(parents=True)
        for name in ("original_image.png", "meta_data.pkl"):
            shutil.copy(folder / name, copy / name)
    from_pickles = load_dragbench(tmp_path)
    for sample, pickled, folder in zip(samples, from_pickles, folders):
        instruction = json.loads((folder / "drag_instruction.json").read_text())
        assert sample.name == pickled.name == f"{folder.parent.name}/{folder.name}"
        assert sample.drag.pair_count == pickled.drag.pair_count == len(instruction["points"]) // 2
        assert sample.prompt == pickled.prompt == instruction["prompt"] and sample.prompt
        assert sample.drag.handles == pickled.drag.handles
        assert np.array_equal(sample.drag.editable_mask(), pickled.drag.editable_mask())
        assert sample.drag.editable_mask().shape == sample.image.shape[:2]
        assert 0 < sample.drag.editable_mask().mean() < 1


class RunsCode:
    def __reduce__(self):
        return (Path.touch, (Path(MARKER),))


MARKER = ""


def test_a_pickle_that_would_run_code_is_refused_and_nothing_ran(tmp_path):
    global MARKER
    MARKER = str(tmp_path / "ran")
    path = tmp_path / "meta_data.pkl"
    path.write_bytes(pickle.dumps({"prompt": "x", "points": [[1, 2], [3, 4]], "mask": RunsCode()}))
    with pytest.raises(BenchmarkDataError, match="refused to load pathlib"):
        read_meta_data(path)
    assert not Path(MARKER).exists()
    # the same pickle loaded plainly would have run it: the check above is not vacuous
    pickle.loads(path.read_bytes())
    assert Path(MARKER).exists()


def test_numpy_arrays_and_builtins_load_from_a_pickle(tmp_path):
    mask = np.zeros((4, 6), np.uint8)
    mask[1:3, 2:5] = 1
    path = tmp_path / "meta_data.pkl"
    path.write_bytes(pickle.dumps({"prompt": "a cat", "points": [[1, 2], [3, 4]], "mask": mask, "n": np.int64(3)}))
    data = read_meta_data(path)
    assert data["prompt"] == "a cat" and data["points"] == [[1, 2], [3, 4]] and np.array_equal(data["mask"], mask)


def write_sample(folder: Path, size=(256, 128), points=((10, 20), (30, 40)), mask=None):
    folder.mkdir(parents=True)
    Image.new("RGB", size, (90, 120, 30)).save(folder / "original.jpg")
    Image.fromarray(np.full(size[::-1], 255, np.uint8) if mask is None else mask).save(folder / "mask.png")
    (folder / "points.json").write_text(json.dumps({"points": [list(p) for p in points]}))


def test_a_picture_not_512_wide_is_resized_as_the_runners_do_and_points_scaled(tmp_path):
    mask = np.zeros((128, 256), np.uint8)
    mask[:, :64] = 255
    write_sample(tmp_path / "s_0", size=(256, 128), mask=mask)
    (sample,) = load_drag100(tmp_path)
    assert sample.image.shape == (256, 512, 3)  # width 512, height int(512·h/w)
    assert sample.drag.handles == ((20.0, 40.0),) and sample.drag.targets == ((60.0, 80.0),)
    assert sample.drag.editable_mask()[:, :128].all() and not sample.drag.editable_mask()[:, 128:].any()


@pytest.mark.parametrize("points, message", [([[1, 2]], "alternate"), ([[1, 2], [3, 4], [5, 6]], "alternate")])
def test_odd_points_are_an_error_naming_the_sample(tmp_path, points, message):
    write_sample(tmp_path / "bad_0", points=points)
    with pytest.raises(BenchmarkDataError, match=f"bad_0.*{message}"):
        load_drag100(tmp_path)


def test_an_empty_folder_says_what_it_expected(tmp_path):
    with pytest.raises(BenchmarkDataError, match="no dragbench samples"):
        load_dragbench(tmp_path)
