"""The only package that speaks SQL: the worker registry, the inbox's history, the event log, and the evidence of
the review loop (validation runs, reviews) and the outbox."""

from orch.store.db import BUSY_TIMEOUT_MS, Store, open_store
from orch.store.records import WORKER_COLUMNS, Event, Message, Outgoing, Review, Validation, Worker

__all__ = [
    "BUSY_TIMEOUT_MS", "WORKER_COLUMNS", "Event", "Message", "Outgoing", "Review", "Store", "Validation", "Worker",
    "open_store",
]
