"""Agent programs and profiles. ``scripted`` is orch's own test agent."""
