"""The public API: the names each public module exports are exactly the intended ones,
and every exception millstream defines lives in millstream.errors, in its drawn tree."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import tomllib
from pathlib import Path

import pytest

import millstream
import millstream.errors
import millstream.processors
import millstream.processors.windows
import millstream.sinks
import millstream.testing
import millstream.windows
from millstream.processors.dead_letters import error_type_name

ROOT = Path(__file__).resolve().parents[2]


def _exported(module: object) -> set[str]:
    names = set(getattr(module, "__all__", ()))
    missing = {n for n in names if not hasattr(module, n)}
    assert not missing, f"{module!r} lists names it does not have: {sorted(missing)}"
    return names


def test_the_top_level_package() -> None:
    assert _exported(millstream) == {
        "App",
        "Task",
        "TaskHandle",
        "Topic",
        "__version__",
        "current_task",
        "errors",
        "sinks",
        "windows",
    }
    assert millstream.windows is importlib.import_module("millstream.windows")
    assert millstream.sinks is importlib.import_module("millstream.sinks")
    assert millstream.errors is importlib.import_module("millstream.errors")


def test_the_readme_imports() -> None:
    from millstream import App, errors, sinks, windows  # noqa: F401
    from millstream.processors import windows as processor_windows
    from millstream.sinks import StdoutSink

    assert processor_windows.Tumbling is windows.Tumbling
    assert StdoutSink is sinks.StdoutSink


def test_errors() -> None:
    defined = {
        name
        for name, value in vars(millstream.errors).items()
        if inspect.isclass(value) and issubclass(value, BaseException)
    }
    assert _exported(millstream.errors) == defined
    assert defined == {
        "AuthenticationError",
        "AuthorizationError",
        "BrokerUnreachableError",
        "ConfigurationError",
        "IllegalTransition",
        "DeliveryError",
        "GroupNotEmptyError",
        "GroupNotFoundError",
        "KafkaError",
        "LateRecord",
        "LocalClusterError",
        "MillstreamError",
        "ProcessingError",
        "ProducerFenced",
        "SerializationError",
        "SinkBackpressure",
        "SinkRefused",
        "TaskArgumentsError",
        "TaskError",
        "TaskFailed",
        "TaskLost",
        "TaskNotFoundError",
        "TaskTimeout",
        "TlsError",
        "TopicAlreadyExistsError",
        "TopicNotFoundError",
        "TransactionError",
    }


def test_sinks() -> None:
    assert _exported(millstream.sinks) == {
        "FileSink",
        "KafkaSink",
        "PostgresSink",
        "Sink",
        "SinkContext",
        "SinkRecord",
        "StdoutSink",
        "WebhookSink",
    }


def test_windows() -> None:
    names = {"Hopping", "Session", "Sliding", "Tumbling", "Window"}
    assert _exported(millstream.windows) == names
    assert _exported(millstream.processors.windows) == names
    for name in names:
        assert getattr(millstream.windows, name) is getattr(millstream.processors.windows, name)


def test_testing() -> None:
    assert _exported(millstream.testing) == {"TestDriver", "TestRecord"}


def test_processors_exports_the_dsl_only() -> None:
    assert _exported(millstream.processors) == {
        "GlobalTable",
        "GroupedStream",
        "Stream",
        "WindowResults",
        "WindowedStream",
        "windows",
    }
    for runtime in ("Worker", "Topology", "WorkerConfig", "WorkerStats"):
        assert not hasattr(millstream.processors, runtime)


# -- the exception tree -------------------------------------------------------------

_TREE_LINE = re.compile(r"^(?P<prefix>[│├└─ ]*)(?P<name>[A-Z]\w+)")


def _drawn_tree() -> dict[str, str | None]:
    """Each class of the docstring's drawing, and the class it is drawn under."""
    drawing = (millstream.errors.__doc__ or "").split("::", 1)[1]
    parents: dict[str, str | None] = {}
    path: list[str] = []
    for line in drawing.strip("\n").splitlines():
        match = _TREE_LINE.match(line.removeprefix("    "))
        assert match, f"cannot read the tree line {line!r}"
        depth = len(match["prefix"]) // 4
        del path[depth:]
        parents[match["name"]] = path[-1] if path else None
        path.append(match["name"])
    return parents


def test_the_drawn_tree_is_the_class_tree() -> None:
    drawn = _drawn_tree()
    assert set(drawn) == set(millstream.errors.__all__)
    for name, parent in drawn.items():
        cls = getattr(millstream.errors, name)
        expected = Exception if parent is None else getattr(millstream.errors, parent)
        assert cls.__bases__ == (expected,), f"{name} is drawn under {parent}"


def _millstream_modules() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    modules = []
    for package in config["packages"]:
        modules.append(package)
        path = importlib.import_module(package).__path__
        modules += [
            f"{package}.{m.name}"
            for m in pkgutil.iter_modules(path)
            if not m.ispkg and m.name != "__main__"
        ]
    return modules


def test_every_exception_class_lives_in_millstream_errors() -> None:
    elsewhere = set()
    for name in _millstream_modules():
        module = importlib.import_module(name)
        for value in vars(module).values():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == name
                and name != "millstream.errors"
            ):
                elsewhere.add(f"{name}.{value.__qualname__}")
    assert not elsewhere, f"move to millstream.errors: {sorted(elsewhere)}"


@pytest.mark.parametrize("error", [millstream.errors.LateRecord, millstream.errors.ProcessingError])
def test_dead_letter_type_names_are_stable(error: type[Exception]) -> None:
    assert error_type_name(error("why")) == f"millstream.errors.{error.__name__}"


def test_producer_fenced_is_a_fatal_transaction_error() -> None:
    fenced = millstream.errors.ProducerFenced("this worker was fenced")
    assert isinstance(fenced, millstream.errors.TransactionError)
    assert fenced.fatal
