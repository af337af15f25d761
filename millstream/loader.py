"""Load an App from a ``module:attribute`` reference, as the CLI receives it."""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

from millstream.app import App
from millstream.errors import ConfigurationError


def load_app(target: str) -> App:
    """Import ``module:attr`` (or ``path/to/file.py:attr``) and return the App it names.

    The current directory is put on ``sys.path`` first, like ``python -m`` does.

    Raises:
        ConfigurationError: the reference is malformed, not importable, or not an App.
    """
    return load_app_module(target)[1]


def load_app_module(target: str) -> tuple[ModuleType, App]:
    """Like :func:`load_app`, also returning the module the App lives in (where the
    dashboard looks for the app's ``dashboard_panels``).

    Raises:
        ConfigurationError: the reference is malformed, not importable, or not an App.
    """
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigurationError("app", f"{target!r} is not of the form module:attribute")
    if module_name.endswith(".py"):
        directory, filename = os.path.split(os.path.abspath(module_name))
        sys.path.insert(0, directory)
        module_name = filename[:-3]
    elif os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError("app", f"cannot import {module_name!r}: {exc}") from exc
    app = getattr(module, attr, None)
    if not isinstance(app, App):
        raise ConfigurationError("app", f"{target!r} is {type(app).__name__}, not a millstream App")
    return module, app
