"""The only package that speaks SQL: the worker registry, orch's record of each task's block (state, summary,
status log), the inbox's history, the event log, the evidence of the review loop (validation runs, reviews) and the
outbox."""

from orch.store.db import BUSY_TIMEOUT_MS, Store, TaskEdit, open_store
from orch.store.forge import PullRow, Reaction
from orch.store.records import (
    WORKER_COLUMNS,
    Event,
    LogLine,
    Message,
    Outgoing,
    Review,
    TaskRow,
    Validation,
    Worker,
)

__all__ = [
    "BUSY_TIMEOUT_MS", "WORKER_COLUMNS", "Event", "LogLine", "Message", "Outgoing", "PullRow", "Reaction", "Review", "Store", "TaskEdit",
    "TaskRow", "Validation", "Worker", "open_store",
]
