"""The assignment watch: a member whose assignment stays away from its target for
too long is told to rejoin; one that converges, or has no target, is left alone."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

import pytest

from millstream.errors import KafkaError, RebalanceStalled
from millstream.processors.membership import AssignmentWatch

A = frozenset({("in", 0), ("in", 1)})
B = frozenset({("in", 0), ("in", 2)})


class Now(Executor):
    """Runs a submitted call at once, on the caller's thread."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def watch(answers: list[Any], clock: list[float]) -> AssignmentWatch:
    def describe() -> Any:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    return AssignmentWatch(
        describe, lambda: clock[0], check_every=5, stall_after=45, executor=Now()
    )


def run(w: AssignmentWatch, clock: list[float], until: float) -> None:
    while clock[0] < until:
        clock[0] += 0.5
        w.check()


def test_an_assignment_apart_from_its_target_for_too_long_means_rejoin() -> None:
    clock = [0.0]
    w = watch([(A, B)] * 20, clock)
    run(w, clock, 45)  # apart since the first answer (t=5, judged at 5.5): not yet 45 s
    with pytest.raises(RebalanceStalled, match=r"owns in\[0\], in\[1\].*target.*in\[2\]"):
        run(w, clock, 60)


def test_a_member_that_converges_or_has_no_target_is_left_alone() -> None:
    clock = [0.0]
    answers: list[Any] = [(A, B)] * 6 + [(B, B)] + [(A, B)] * 6 + [(A, None), None]
    answers += [KafkaError("coordinator moving")] + [(A, B)] * 3
    w = watch(answers, clock)
    run(w, clock, 5 * len(answers) + 1)  # never 45 s apart in a row
