"""The evaluation's results table: rows written whole, a row cut by a crash detected and dropped (so
its edit is made again), damaged rows dropped, error rows kept."""

from dragkit.core.results import ResultsTable

COLUMNS = ("sample", "method", "seconds", "error")


def test_rows_are_appended_whole_and_read_back(tmp_path):
    table = ResultsTable(tmp_path / "per_sample.csv", COLUMNS)
    assert table.rows() == []
    table.append({"sample": "a", "method": "gooddrag", "seconds": 1.5})
    table.append({"sample": "b", "method": "gooddrag", "error": "b/points.json: pair 1 handle (nan, 3)\nis outside"})
    rows = table.rows()
    assert [r["sample"] for r in rows] == ["a", "b"]
    assert rows[0]["error"] == "" and rows[1]["error"] == "b/points.json: pair 1 handle (nan, 3) is outside"
    assert (tmp_path / "per_sample.csv").read_text().count("\n") == 3  # header and one line per row


def test_a_row_cut_mid_write_is_dropped_and_the_table_repaired(tmp_path):
    path = tmp_path / "per_sample.csv"
    table = ResultsTable(path, COLUMNS)
    table.append({"sample": "a", "method": "m", "seconds": 1})
    table.append({"sample": "b", "method": "m", "seconds": 2})
    whole = path.read_bytes()
    path.write_bytes(whole[:-5])  # a crash in the middle of the last row
    assert [r["sample"] for r in table.rows()] == ["a"]
    assert path.read_bytes().endswith(b"\n") and b"b," not in path.read_bytes()  # repaired on disk
    table.append({"sample": "b", "method": "m", "seconds": 2})  # made again on resume
    assert [r["sample"] for r in table.rows()] == ["a", "b"]


def test_damaged_rows_and_an_older_header_are_handled(tmp_path):
    path = tmp_path / "per_sample.csv"
    path.write_text("sample,method,seconds\na,m,1\nbroken\nc,m,3\n")  # an older table without `error`
    rows = ResultsTable(path, COLUMNS).rows()
    assert [(r["sample"], r["error"]) for r in rows] == [("a", ""), ("c", "")]
    assert path.read_text().splitlines()[0] == "sample,method,seconds,error"


def test_a_table_of_something_else_is_refused(tmp_path):
    path = tmp_path / "per_sample.csv"
    path.write_text("name,score\nx,1\n")
    try:
        ResultsTable(path, COLUMNS).rows()
    except ValueError as refused:
        assert "not a results table" in str(refused)
    else:
        raise AssertionError("a foreign table was read")
