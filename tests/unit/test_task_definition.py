"""Declaring tasks, their options, and what fails at ``send`` (no broker needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from millstream import App
from millstream.config import load_settings
from millstream.errors import ConfigurationError, SerializationError, TaskArgumentsError
from millstream.processors.tasks.definition import RetryPolicy
from millstream.processors.tasks.delays import tier_for
from millstream.processors.tasks.envelope import Delivery, TaskEnvelope


def _noop() -> None: ...


@pytest.fixture
def app(tmp_path: Any) -> App:
    # Nothing here may reach a broker: this one does not exist.
    return App("shop", settings=load_settings(local_dir=tmp_path, bootstrap_servers="127.0.0.1:9"))


def test_a_task_is_still_a_plain_function(app: App) -> None:
    @app.task
    def double(x: int) -> int:
        return 2 * x

    assert double(21) == 42
    assert double.name == "double" and double.topic == "shop-task-double"
    assert double.policy == RetryPolicy()
    assert app.topology.tasks == {"double": double}


def test_options_are_validated_when_the_task_is_declared(app: App) -> None:
    with pytest.raises(ConfigurationError, match="'name'"):
        app.task("no spaces allowed")(_noop)
    with pytest.raises(ConfigurationError, match="'retries'"):
        app.task(retries=-1)(_noop)
    with pytest.raises(ConfigurationError, match="'concurrency'"):
        app.task(concurrency=0)(_noop)
    with pytest.raises(ConfigurationError, match="'backoff'"):
        app.task(backoff=0)(_noop)
    with pytest.raises(ConfigurationError, match="'retry_on'"):
        app.task(retry_on=(int,))(_noop)  # type: ignore[arg-type]

    @app.task(name="taken")
    def one() -> None: ...

    with pytest.raises(ConfigurationError, match="taken"):
        app.task(name="taken")(_noop)


def test_arguments_that_cannot_work_fail_at_send_before_any_connection(app: App) -> None:
    @app.task
    def charge(order_id: str, amount: float) -> None: ...

    with pytest.raises(TaskArgumentsError, match="cannot be sent as JSON"):
        charge.send("o-1", object())  # type: ignore[arg-type]
    with pytest.raises(TaskArgumentsError, match="missing a required argument"):
        charge.send("o-1")  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match="'eta'"):
        charge.options(eta=datetime(2030, 1, 1))  # naive
    assert charge.options(delay=timedelta(minutes=5)).delay == 300
    assert 0 < charge.options(eta=datetime.now(UTC) + timedelta(seconds=30)).delay <= 30


class Order(BaseModel):
    id: str
    amount: float


def test_pydantic_models_travel_as_json_and_come_back_as_models(app: App) -> None:
    @app.task
    def place(order: Order) -> float:
        return order.amount

    envelope = place.envelope((Order(id="o-1", amount=2.5),), {}, "t")
    value = TaskEnvelope.decode(envelope.encode())
    assert value.args == [{"id": "o-1", "amount": 2.5}]
    bound = place.bind(value.args, value.kwargs)
    assert bound.args == (Order(id="o-1", amount=2.5),)
    with pytest.raises(TaskArgumentsError, match="order"):
        place.bind([{"id": "o-1"}], {})


def test_backoff_grows_exponentially_up_to_its_cap_and_jitter_only_adds() -> None:
    policy = RetryPolicy(retries=10, backoff=1.0, max_backoff=10.0)
    for attempts, base in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)]:
        waits = [policy.delay(attempts) for _ in range(200)]
        assert min(waits) >= base
        assert max(waits) <= base * 1.1
    assert policy.retries_on(ValueError(), 10) and not policy.retries_on(ValueError(), 11)
    assert not RetryPolicy(retry_on=(KeyError,)).retries_on(ValueError(), 1)


def test_a_wait_goes_to_the_longest_tier_not_longer_than_it() -> None:
    assert tier_for(0.5) is None
    assert tier_for(1.0) == "1s"
    assert tier_for(9.99) == "1s"
    assert tier_for(120) == "1m"
    assert tier_for(7 * 3600) == "1h"


def test_delivery_headers_round_trip_and_replace_old_ones() -> None:
    delivery = Delivery(attempts=2, due=1000, first_failure=900, replay=7, target="t")
    headers = delivery.headers([("user", b"x"), ("millstream.task.attempts", b"1")])
    assert ("user", b"x") in headers
    assert [v for k, v in headers if k == "millstream.task.attempts"] == ["2"]
    assert Delivery.of(headers) == delivery
    assert Delivery.of(None) == Delivery()
    with pytest.raises(SerializationError):
        Delivery.of([("millstream.task.due", b"soon")])


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"[1]",
        b'{"task": "x"}',
        b'{"id": 1, "task": "x"}',
        b'{"id": "a", "task": "x", "args": 3}',
    ],
)
def test_a_value_that_is_not_a_task_record_is_a_serialization_error(value: bytes) -> None:
    with pytest.raises(SerializationError):
        TaskEnvelope.decode(value)
