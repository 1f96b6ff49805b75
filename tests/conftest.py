"""Shared test setup: DragKit is importable as `dragkit` in every test; the fidelity tests against the
official GoodDrag run (tests/conformance, a few minutes) only with DRAGKIT_CONFORMANCE=1."""

import os

from pack import register_pack

register_pack()

collect_ignore = [] if os.environ.get("DRAGKIT_CONFORMANCE") == "1" else ["conformance"]
