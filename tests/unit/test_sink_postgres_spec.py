"""PostgresSink without a server: the arguments it refuses (naming them), the types it
gives created columns, and the error without psycopg. The sink against PostgreSQL is
tests/integration/test_sink_postgres.py."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from millstream.errors import ConfigurationError
from millstream.sinks import PostgresSink
from millstream.sinks.postgres_table import infer_type

DSN = "host=127.0.0.1 port=1 user=postgres dbname=postgres"


@pytest.mark.parametrize(
    ("arguments", "setting", "problem"),
    [
        ({"dsn": "no equals sign"}, "dsn", "not a PostgreSQL connection string"),
        ({"table": "a.b.c"}, "table", "not a table or schema.table"),
        ({"table": ""}, "table", "not a table"),
        ({"key": "id"}, "key", "list of column names"),
        ({"key": []}, "key", "at least one column"),
        ({"key": ["id", "id"]}, "key", "named twice"),
        ({"columns": ["id", "_offset"]}, "columns", "'_offset' is a column millstream writes"),
        ({"columns": ["id"], "key": ["account"]}, "key", "'account' is not one of columns="),
    ],
)
def test_invalid_arguments_name_the_setting(
    arguments: dict[str, Any], setting: str, problem: str
) -> None:
    given = {"dsn": DSN, "table": "payments", **arguments}
    with pytest.raises(ConfigurationError, match=problem) as raised:
        PostgresSink(given.pop("dsn"), given.pop("table"), **given)
    assert raised.value.setting == setting


def test_valid_arguments_touch_no_server() -> None:
    sink = PostgresSink(DSN, "ledger.payments", key=["account"], columns={"account": "text"})
    assert sink.spec.conflict == ("account",)
    assert repr(sink) == "PostgresSink('ledger.payments' at 127.0.0.1:1)"
    sink.flush()  # nothing written: no connection needed
    sink.close()


@pytest.mark.parametrize(
    ("values", "sql_type"),
    [
        ([1, None, 2], "bigint"),
        ([1.5, 2], "double precision"),
        ([True, False], "boolean"),
        (["a", None], "text"),
        ([{"a": 1}, [1]], "jsonb"),
        ([1, "a"], "jsonb"),
        ([None, None], "text"),
    ],
)
def test_created_column_types_follow_the_first_batch(values: list[Any], sql_type: str) -> None:
    assert infer_type(values) == sql_type


def test_without_psycopg_the_error_names_the_extra() -> None:
    script = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from millstream.errors import ConfigurationError\n"
        "from millstream.sinks import KafkaSink, PostgresSink\n"
        "try:\n"
        "    PostgresSink('host=x', 't')\n"
        "except ConfigurationError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'millstream[postgres]'" in done.stdout
