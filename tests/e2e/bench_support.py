"""What the smoke tests of ``scripts/bench`` read: the rows of its table, the numbers in
their cells, and the servers a run may have left behind."""

from __future__ import annotations

from pathlib import Path


def table_rows(stdout: str, scenario: str) -> dict[str, list[str]]:
    """The rows of the rich table of ``scenario``, by contender label: [scenario, label,
    rate, ...]."""
    rows: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if len(cells) > 2 and cells[0] == scenario:
            rows[cells[1]] = cells
    return rows


def number(cell: str) -> float:
    """The first number of a cell like ``41,730 (3 runs: 40k-44k)`` or ``3.0 / 11.6``."""
    try:
        return float(cell.split()[0].replace(",", ""))
    except (IndexError, ValueError):
        return 0.0


def servers_under(directory: Path, program: str) -> list[str]:
    """Command lines of running ``program`` processes that name a path under
    ``directory`` (their data directory)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if args[0].endswith(program) and any(str(directory) in a for a in args):
            found.append(" ".join(args))
    return found
