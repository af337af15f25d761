"""`millstream worker` commands."""

from __future__ import annotations

import typer


def register(cli: typer.Typer) -> None:
    """Add the worker command(s) to the root CLI."""
