"""`orch dash`: the terminal dashboard (Textual) over the status model."""
