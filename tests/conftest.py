"""The fixtures and hooks are orch's test kit plugin (tests/kit/plugin.py); helpers are imported from
tests/kit/harness.py, never from here."""

pytest_plugins = ("tests.kit.plugin",)
