"""Tasks: functions registered with ``@app.task``, published as Kafka records and run
by the app's workers (docs/tasks.md)."""

from millstream.processors.tasks.client import TaskHandle
from millstream.processors.tasks.definition import Task, TaskCall
from millstream.processors.tasks.runner import TaskInfo, current_task

__all__ = ["Task", "TaskCall", "TaskHandle", "TaskInfo", "current_task"]
