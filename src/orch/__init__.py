"""orch: run a queue of coding tasks through AI coding agents, one git worktree and one tmux window per worker."""

__version__ = "0.1.0"
