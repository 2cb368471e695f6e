"""`orch web`: the status model as a web page (a board, a page per task with its live screen, replies), served on
loopback by an ASGI app (Starlette, uvicorn). Nothing is served without the token `orch web` prints."""
