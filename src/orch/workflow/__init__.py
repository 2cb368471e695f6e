"""What orch does: spawn, scan (reconcile), route, inbox, close. Pure decisions are plain functions."""
