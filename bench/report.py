"""The results: ratios against the reference rows, the project's targets, and their output
as a rich table on stdout, docs/benchmarks.md and one PNG bar chart per scenario."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.environment import Environment
from bench.method import METHOD
from bench.results import Result, RunConfig

#: Restores must reach this many changelog records per second.
RESTORE_TARGET = 200_000
#: millstream's task throughput must reach this multiple of Celery's.
TASKS_THROUGHPUT = 3
#: The tasks section of docs/benchmarks.md lies between these lines: ``scripts/bench
#: tasks`` rewrites only what is between them, the stream scenarios keep it.
TASKS_BEGIN = "<!-- tasks section: written by `scripts/bench tasks` -->"
TASKS_END = "<!-- end of the tasks section -->"
#: The same for the sinks section (``scripts/bench sinks``), which follows it.
SINKS_BEGIN = "<!-- sinks section: written by `scripts/bench sinks` -->"
SINKS_END = "<!-- end of the sinks section -->"
#: The sections a run of the stream scenarios keeps, in their order.
KEPT_SECTIONS = ((TASKS_BEGIN, TASKS_END), (SINKS_BEGIN, SINKS_END))


@dataclass(frozen=True)
class Comparison:
    """``ratio`` of a row's figure to the ``against`` row's; a target when ``minimum`` (the
    ratio must reach it) or ``maximum`` (the ratio must stay below it)."""

    against: str
    ratio: float
    minimum: float | None = None
    maximum: float | None = None

    @property
    def passed(self) -> bool | None:
        if self.minimum is not None:
            return self.ratio >= self.minimum
        if self.maximum is not None:
            return self.ratio < self.maximum
        return None

    def text(self) -> str:
        base = f"{self.ratio:.2f}x {self.against}"
        if self.passed is None:
            return base
        bound = f">= {self.minimum:g}" if self.minimum is not None else f"< {self.maximum:g}"
        return f"{base} ({bound}: {'pass' if self.passed else 'FAIL'})"


def comparisons(results: list[Result]) -> dict[tuple[str, str], list[Comparison]]:
    """Each row's ratios: vs. the plain loop (passthrough, stateless), vs. Quix Streams at
    the same guarantee and faust (window), exactly-once vs. at-least-once with the same
    store (window), restore rates vs. the restore target (as a ratio), and in tasks
    millstream's throughput and p99 vs. every Celery row's."""
    rate = {(r.scenario, r.contender): r.rate for r in results if r.ok and r.rate}
    out: dict[tuple[str, str], list[Comparison]] = {}

    def compare(row: Result, reference: str, against: str, minimum: float | None) -> None:
        base = rate.get((row.scenario, reference))
        mine = rate.get((row.scenario, row.contender))
        if base and mine:
            out.setdefault((row.scenario, row.contender), []).append(
                Comparison(against, mine / base, minimum)
            )

    for row in results:
        is_millstream = row.family == "millstream"
        if row.scenario in ("passthrough", "stateless") and row.family != "plain":
            compare(row, "plain", "plain loop", 0.8 if is_millstream else None)
        elif row.scenario == "window" and is_millstream:
            eos = row.guarantee == "exactly_once"
            compare(row, "quix-eos" if eos else "quix-alos", "Quix" + (" EOS" if eos else ""), 3)
            if not eos:
                compare(row, "faust", "faust", 10)
            else:
                compare(row, f"millstream-alos-{row.store}", "at-least-once", 0.8)
        elif row.scenario == "restore" and row.ok and row.rate:
            out[(row.scenario, row.contender)] = [
                Comparison(f"{RESTORE_TARGET // 1000}k/s target", row.rate / RESTORE_TARGET, 1)
            ]
        elif row.scenario == "tasks" and is_millstream and row.ok:
            out[(row.scenario, row.contender)] = _against_celery(row, results)
    return out


def _against_celery(row: Result, results: list[Result]) -> list[Comparison]:
    """A millstream tasks row against each Celery row: at least ``TASKS_THROUGHPUT``
    times the throughput, and a lower p99 round trip."""
    found = []
    for peer in results:
        if peer.scenario != "tasks" or peer.family != "celery" or not peer.ok:
            continue
        if row.rate and peer.rate:
            found.append(Comparison(peer.label, row.rate / peer.rate, TASKS_THROUGHPUT))
        if row.p99_ms and peer.p99_ms:
            found.append(Comparison(f"the p99 of {peer.label}", row.p99_ms / peer.p99_ms, None, 1))
    return found


def targets(results: list[Result]) -> list[tuple[str, str, str]]:
    """(row, comparison, pass/FAIL) for every target that could be measured."""
    rows = {(r.scenario, r.contender): r for r in results}
    found = []
    for key, items in comparisons(results).items():
        for item in items:
            if item.passed is not None:
                label = f"{key[0]}: {rows[key].label}"
                found.append((label, item.text(), "pass" if item.passed else "FAIL"))
    return found


def notes(results: list[Result], star: str = "*") -> list[str]:
    return [f"{star} {r.scenario}, {r.label}: {r.note}" for r in results if r.note]


def number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def spread(runs: list[float]) -> str:
    """The range of a repeated contender's runs, after the median."""
    if len(runs) < 2:
        return ""
    if min(runs) < 10_000:
        return f" ({len(runs)} runs: {min(runs):,.0f}-{max(runs):,.0f})"
    return f" ({len(runs)} runs: {min(runs) / 1000:,.0f}k-{max(runs) / 1000:,.0f}k)"


def _row_cells(result: Result, ratios: list[Comparison], nominal_rate: int) -> list[str]:
    if not result.ok:
        return [result.scenario, result.label, result.status, *[""] * (len(HEADERS) - 3)]
    p50, p99 = result.p50_ms, result.p99_ms
    latency = "-" if p50 is None else f"{p50:,.0f} / {p99:,.0f}"
    if p50 is not None and result.latency_rate is not None and result.latency_rate < nominal_rate:
        latency += f" (at {result.latency_rate:,}/s)"
    return [
        result.scenario,
        result.label,
        number(result.rate) + spread(result.runs) + (" *" if result.note else ""),
        latency,
        number(result.rss_mb),
        number(result.cpu_s, 1),
        number(result.cpu_us_per_record, 1),
        number(result.wall_s, 1),
        number(result.startup_s, 1),
        number(result.load, 1),
        "; ".join(c.text() for c in ratios) or "-",
    ]


HEADERS = [
    "scenario",
    "contender",
    "records/s",
    "latency p50 / p99 ms",
    "peak RSS MB",
    "CPU s",
    "CPU us/record",
    "wall s",
    "startup s",
    "load",
    "ratios (targets)",
]


def print_table(results: list[Result], config: RunConfig) -> None:
    """The results as a rich table on stdout, then the targets."""
    console = Console(width=220)
    ratios = comparisons(results)
    table = Table(title="millstream benchmark", show_lines=False)
    for header in HEADERS:
        table.add_column(header, justify="left" if header in HEADERS[:2] else "right")
    for result in results:
        cells = _row_cells(
            result, ratios.get((result.scenario, result.contender), []), config.latency_rate
        )
        table.add_row(*cells)
    console.print(table)
    for note in notes(results):
        console.print(note)
    for label, text, verdict in targets(results):
        console.print(f"target {verdict:4}  {label}: {text}")


def write_markdown(
    path: Path, results: list[Result], env: Environment, config: RunConfig, charts: list[Path]
) -> None:
    """docs/benchmarks.md: setup, table, targets, charts, the hand-written observations of
    docs/benchmarks/notes.md when it exists, and the method."""
    ratios = comparisons(results)
    lines = [
        "# Benchmarks: millstream and its peers on the same broker",
        "",
        "Generated by `scripts/bench` (this file and the charts under `docs/benchmarks/` are",
        "rewritten by every run that is not given `--no-docs`; a run of `scripts/bench tasks`",
        "or `scripts/bench sinks` rewrites only its own section at the end, and the stream",
        "runs keep both).",
        "",
        "## Setup",
        "",
        f"- Date: {env.date}",
        f"- Machine: {env.machine}; the broker, the load generator and the contender share it",
        f"- Broker: {env.broker}",
        f"- Harness: {env.python}",
        *(f"- {family}: {text}" for family, text in env.contenders.items()),
        f"- Input: {config.records:,} records of ~150-byte JSON, {config.keys:,} keys, "
        f"{config.partitions} partitions; latency phase {config.latency_rate:,} records/s "
        f"for {config.latency_seconds:g} s",
        "",
        "## Results",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---" if i < 2 else "---:" for i in range(len(HEADERS))) + "|",
    ]
    for result in results:
        cells = _row_cells(
            result, ratios.get((result.scenario, result.contender), []), config.latency_rate
        )
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    lines += ["", *notes(results, "- \\*"), "", "## Targets", ""]
    found = targets(results)
    lines += [f"- **{verdict}** {label}: {text}" for label, text, verdict in found] or ["- none"]
    lines += ["", "## Charts", ""]
    lines += [f"![{chart.stem}](benchmarks/{chart.name})" for chart in charts]
    observations = path.parent / "benchmarks" / "notes.md"
    if observations.exists():
        lines += ["", observations.read_text().strip()]
    lines += ["", METHOD.strip(), ""]
    for begin, end in KEPT_SECTIONS:
        kept = marked_section(path, begin, end)
        if kept:
            lines += [kept, ""]
    path.write_text("\n".join(lines))


def marked_section(path: Path, begin: str, end: str) -> str:
    """The section of the markdown file at ``path`` between the lines ``begin`` and
    ``end`` (the markers included), or ""."""
    text = path.read_text() if path.exists() else ""
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        return ""
    return text[start : stop + len(end)]


def write_marked_section(path: Path, begin: str, end: str, section: str) -> None:
    """Put ``section`` (the body, without markers) between the markers ``begin`` and
    ``end`` of the file at ``path``: in place of the old section, or at the end when
    there is none."""
    block = f"{begin}\n{section.strip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    old = marked_section(path, begin, end)
    text = text.replace(old, block) if old else f"{text.rstrip()}\n\n{block}\n"
    path.write_text(text)


def tasks_section(path: Path) -> str:
    """The tasks section of the markdown file at ``path`` (its markers included), or ""."""
    return marked_section(path, TASKS_BEGIN, TASKS_END)


def write_tasks_section(path: Path, section: str) -> None:
    """Put ``section`` between the tasks markers of the file at ``path``."""
    write_marked_section(path, TASKS_BEGIN, TASKS_END, section)


def ensure_matplotlib() -> None:
    """Install matplotlib into this interpreter's environment on first use."""
    try:
        importlib.import_module("matplotlib")
    except ImportError:
        print("installing matplotlib (for the charts) ...", file=sys.stderr)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "matplotlib",
            ],
            check=True,
        )
        importlib.invalidate_caches()


def write_charts(directory: Path, results: list[Result]) -> list[Path]:
    """One horizontal bar chart of records/s per scenario (the median, with a line over the
    range of the runs when a contender ran more than once); rows without a rate say why."""
    ensure_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for scenario in _unique(r.scenario for r in results):
        rows = [r for r in results if r.scenario == scenario]
        rates = [r.rate if r.ok and r.rate else 0.0 for r in rows]
        fig, ax = plt.subplots(figsize=(8, 0.5 * len(rows) + 1.4), dpi=100)
        colors = ["#2a6fb0" if r.family == "millstream" else "#9a9a9a" for r in rows]
        bars = ax.barh([r.label for r in rows], rates, color=colors)
        # Repeated contenders: a whisker from their slowest to their fastest run.
        for i, (row, rate) in enumerate(zip(rows, rates, strict=True)):
            if len(row.runs) > 1 and rate:
                ax.plot([min(row.runs), max(row.runs)], [i, i], color="#333333", lw=1)
        ax.invert_yaxis()
        ax.set_xlabel(
            "records/s" + (" (changelog records restored)" if scenario == "restore" else "")
        )
        ax.set_title(f"{scenario}: throughput ({rows[0].records:,} records)")
        for bar, row, value in zip(bars, rows, rates, strict=True):
            text = f" {value:,.0f}{' *' if row.note else ''}" if value else f" {row.status[:40]}"
            right = max([bar.get_width(), *row.runs]) if value else bar.get_width()
            ax.text(right, bar.get_y() + bar.get_height() / 2, text, va="center", fontsize=8)
        ax.set_xlim(0, max([*rates, *(x for r in rows for x in r.runs), 1.0]) * 1.3)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:,.0f}"))
        fig.tight_layout()
        path = directory / f"{scenario}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
