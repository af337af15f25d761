"""Seeing and steering an app's consumer group from outside: its status (state, members,
committed offsets, end offsets and lag) and resets of its committed offsets.

The ``millstream status`` and ``millstream reset`` commands are thin layers over
:mod:`millstream.groups.status` and :mod:`millstream.groups.reset`.
"""

from millstream.groups.reset import ResetChange, parse_target, plan_reset, reset_offsets
from millstream.groups.status import (
    GroupStatus,
    MemberStatus,
    PartitionLag,
    consumed_topics,
    lag,
    read_status,
)

__all__ = [
    "GroupStatus",
    "MemberStatus",
    "PartitionLag",
    "ResetChange",
    "consumed_topics",
    "lag",
    "parse_target",
    "plan_reset",
    "read_status",
    "reset_offsets",
]
