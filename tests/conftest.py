"""Shared test setup: DragKit is importable as `dragkit` in every test."""

from pack import register_pack

register_pack()
