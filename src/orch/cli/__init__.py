"""The command line: one module per command group; parse, call a workflow, render. No subprocess or SQL here."""
