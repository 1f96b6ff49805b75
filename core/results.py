"""An evaluation's results table (per_sample.csv) that loses nothing and never lies about what is done.

Each row is appended whole, in one write of one line followed by fsync, so a crash can cut at most the
last line. Reading keeps complete rows only: a cut or malformed row is dropped from the file (with a
warning) so that its edit counts as not done and is made again. A row may be an error row (`error`
set, no figures): a sample that could not be evaluated, reported and kept so the run goes on.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


class ResultsTable:
    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        self.path, self.columns = Path(path), tuple(columns)

    def rows(self) -> list[dict]:
        """The complete rows (error rows included), in order. A table with damaged rows, or written with
        fewer columns by an older version, is rewritten with its good rows (empty for new columns)."""
        if not self.path.exists():
            return []
        text = self.path.read_bytes().decode("utf-8", errors="replace")
        if not text:
            return []
        records = list(csv.reader(io.StringIO(text)))
        header, body = records[0], records[1:]
        cut = not text.endswith("\n")
        if cut and body:  # the last row was cut mid-write
            log.warning("%s: the last row was cut off (an interrupted write); its edit will be made again", self.path)
            body = body[:-1]
        if not header or [c for c in header if c not in self.columns]:
            raise ValueError(f"{self.path}: not a results table of this evaluation (columns {header[:4]}…); "
                             "choose another --output")
        good = [dict(zip(header, record)) for record in body if len(record) == len(header)]
        if len(good) < len(body):
            log.warning("%s: %d damaged row(s) dropped; their edits will be made again", self.path, len(body) - len(good))
        good = [{c: row.get(c, "") for c in self.columns} for row in good]
        if cut or len(good) < len(body) or header != list(self.columns):
            self._rewrite(good)
        return good

    def append(self, row: dict) -> None:
        """One row, written whole (values on one line) and flushed to disk before returning."""
        line = io.StringIO()
        writer = csv.writer(line, lineterminator="\n")
        if not self.path.exists() or self.path.stat().st_size == 0:
            writer.writerow(self.columns)
        writer.writerow([_one_line(row.get(c, "")) for c in self.columns])
        data = line.getvalue().encode()
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(descriptor, data)
            if written != len(data):
                raise OSError(f"{self.path}: wrote {written} of {len(data)} bytes")
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def _rewrite(self, rows: list[dict]) -> None:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(self.columns)
        for row in rows:
            writer.writerow([_one_line(row.get(c, "")) for c in self.columns])
        partial = self.path.with_suffix(self.path.suffix + ".partial")
        partial.write_text(text.getvalue())
        with partial.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, self.path)


def _one_line(value) -> str:
    return " ".join(str(value).splitlines())
