"""``millstream topics list|create|describe|delete``: topic administration."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from millstream.cli.common import BootstrapOption, cli_settings, console, fail, handles_errors
from millstream.errors import TopicNotFoundError
from millstream.kafka import TopicAdmin, TopicInfo, TopicSpec

topics = typer.Typer(
    name="topics", help="List, create, describe and delete topics.", no_args_is_help=True
)


def _admin(bootstrap_servers: str | None) -> TopicAdmin:
    return TopicAdmin(cli_settings(bootstrap_servers))


def parse_configs(pairs: list[str]) -> dict[str, str]:
    """``["k=v", ...]`` as a dict; a pair without ``=`` or with an empty key is an error."""
    config: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            fail(f"--config {pair!r} is not KEY=VALUE (e.g. --config retention.ms=86400000)")
        config[key.strip()] = value.strip()
    return config


@topics.command("list")
@handles_errors
def list_topics(bootstrap_servers: BootstrapOption = None) -> None:
    """List the cluster's topics (internal ones hidden) with their partition counts."""
    counts = _admin(bootstrap_servers).partition_counts()
    if not counts:
        console.print("no topics")
        return
    table = Table("Topic", "Partitions", title=f"{len(counts)} topic(s)")
    table.columns[0].overflow = "fold"
    for name, partitions in counts.items():
        table.add_row(name, str(partitions))
    console.print(table)


@topics.command("create")
@handles_errors
def create_topic(
    name: Annotated[str, typer.Argument(help="Topic to create.")],
    partitions: Annotated[int, typer.Option("--partitions", "-p", min=1, help="Partitions.")],
    replication: Annotated[
        int | None,
        typer.Option("--replication", "-r", min=1, help="Replicas; default min(3, brokers)."),
    ] = None,
    config: Annotated[
        list[str] | None,
        typer.Option("--config", "-c", help="Topic setting KEY=VALUE (repeatable)."),
    ] = None,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Create a topic; an existing topic of that name is an error."""
    spec = TopicSpec(name, partitions, replication, parse_configs(config or []))
    admin = _admin(bootstrap_servers)
    admin.create([spec], if_missing=False)
    info = admin.describe(name)
    console.print(
        f"created topic [bold]{info.name}[/]: {info.partitions} partition(s), "
        f"replication {info.replication}",
        soft_wrap=True,
    )


@topics.command("describe")
@handles_errors
def describe_topic(
    name: Annotated[str, typer.Argument(help="Topic to describe.")],
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Show a topic's partitions, replication and non-default settings."""
    console.print(_describe_table(_admin(bootstrap_servers).describe(name)))


def _describe_table(info: TopicInfo) -> Table:
    table = Table("Property", "Value", title=f"topic {info.name}")
    table.columns[1].overflow = "fold"
    table.add_row("partitions", str(info.partitions))
    table.add_row("replication", str(info.replication))
    for key, value in sorted(info.config.items()):
        table.add_row(key, value)
    return table


@topics.command("delete")
@handles_errors
def delete_topic(
    name: Annotated[str, typer.Argument(help="Topic to delete.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Delete a topic and all its records (asks first unless --yes)."""
    admin = _admin(bootstrap_servers)
    if not admin.exists(name):
        raise TopicNotFoundError(f"topic {name!r} does not exist")
    if not yes and not typer.confirm(f"Delete topic {name!r} and all its records?"):
        fail("not deleted")
    admin.delete([name])
    console.print(f"deleted topic [bold]{escape(name)}[/]", soft_wrap=True)


def register(cli: typer.Typer) -> None:
    """Add ``millstream topics ...`` to the root CLI."""
    cli.add_typer(topics)
