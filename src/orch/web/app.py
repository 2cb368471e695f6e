"""The web dashboard's ASGI app: the board and task pages, the model and each screen pushed as server-sent
events, and the actions (a reply) through the same workflow functions as the CLI.

Security: the page, its data and its actions need the token printed by `orch web` (in the URL once, then an
HttpOnly, SameSite=Strict cookie); an action also needs the page's CSRF token in a header (a form posted from
another site cannot set it) and a same-origin request (``Sec-Fetch-Site`` / ``Origin``). Text typed into an agent
goes through `orch reply`'s path (control sequences neutralised). The screen is read-only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from orch.errors import OrchError
from orch.workspace import Workspace

STATIC = os.path.join(os.path.dirname(__file__), "static")
COOKIE = "orch_token"
SCREEN_EVERY = 0.3  # seconds between two readings of a screen someone is watching


class Board:
    """The model, shared by every connection, each change announced to the pages (``model.Reader``)."""

    def __init__(self, ws: Workspace) -> None:
        from orch.workflow.model import Reader

        self.reader = Reader(ws)
        self.text = ""
        self.version = 0
        self.changed = asyncio.Condition()

    async def watch(self) -> None:
        from orch.workflow.model import follow

        async def announce(text: str) -> None:
            async with self.changed:
                self.text, self.version = text, self.version + 1
                self.changed.notify_all()

        await follow(self.reader, lambda text: asyncio.get_running_loop().create_task(announce(text)))


def screen_of(ws: Workspace, address: str) -> str:
    """A worker's live screen with its colours (200 lines); a task on a host has it read there (many hosts)."""
    from orch.workflow import remote, route
    from orch.workflow.context import Ctx

    ctx = Ctx(ws)
    try:
        hosted = remote.screen(ctx, address, 200)
        if hosted is not None:
            return hosted
        target = route.resolve(ctx, address, allow_dead=True)
        return ctx.mux.capture(target.pane.pane_id, 200, styled=True)
    except OrchError as exc:
        return f"({exc})"
    finally:
        ctx.close()


def _hosted(ctx, slug: str, args: list[str], running: bool = False) -> str | None:  # noqa: ANN001
    """A task on a host: the action is its host's (many hosts); None: it runs here."""
    if not ctx.cfg.cluster.address:
        return None
    from orch.workflow import remote

    return remote.on_host(ctx, slug, args, running)


def _reply(ctx, slug: str, body: dict) -> str:  # noqa: ANN001 - a workflow Ctx
    from orch.workflow.route import reply

    if (said := _hosted(ctx, slug, ["reply", slug, "--", str(body["text"])])) is not None:
        return said
    return f"answered {slug}: typed into {reply(ctx, slug, str(body['text'])).address}"


def _send(ctx, slug: str, body: dict) -> str:  # noqa: ANN001
    from orch.workflow.route import send

    if (said := _hosted(ctx, slug, ["send", slug, "--", str(body["text"])])) is not None:
        return said
    return f"sent to {send(ctx, slug, str(body['text'])).address}"


def _retry(ctx, slug: str, body: dict) -> str:  # noqa: ANN001
    from orch.workflow.restart import retry

    if (said := _hosted(ctx, slug, ["retry", slug], running=True)) is not None:
        return said
    done = retry(ctx, slug)
    return f"retried {slug}: {done.state}, round {done.round}"


def _recover(ctx, slug: str, body: dict) -> str:  # noqa: ANN001
    from orch.workflow.recover import recover

    return "; ".join(recover(ctx, slug)) or f"{slug}: nothing to recover"


def _close(ctx, slug: str, body: dict) -> str:  # noqa: ANN001
    from orch.workflow.close import close

    close(ctx, slug)
    return f"closed {slug}"


def _land(ctx, slug: str, body: dict) -> str:  # noqa: ANN001
    from orch.workflow.land import land

    return "\n".join(land(ctx, [slug], dry_run=bool(body.get("plan"))))


ACTIONS = {"reply": _reply, "send": _send, "retry": _retry, "recover": _recover, "close": _close, "land": _land}


def make_app(ws: Workspace, token: str) -> Starlette:
    board = Board(ws)
    csrf = hmac.new(token.encode(), b"csrf", hashlib.sha256).hexdigest()

    def allowed(request: Request) -> bool:
        given = request.query_params.get("token") or request.cookies.get(COOKIE) or ""
        return hmac.compare_digest(given.encode(), token.encode())

    def refused() -> Response:
        return PlainTextResponse("orch web: this needs the token from the URL `orch web` printed\n", status_code=403)

    def page(request: Request) -> Response:
        if not allowed(request):
            return refused()
        with open(os.path.join(STATIC, "index.html"), encoding="utf-8") as fh:
            html = fh.read().replace("{{csrf}}", csrf)
        response = HTMLResponse(html, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                                               "X-Frame-Options": "DENY",
                                               "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'"})
        if request.query_params.get("token"):
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
        return response

    def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ("app.js", "style.css"):
            return PlainTextResponse("not found\n", status_code=404)
        return FileResponse(os.path.join(STATIC, name))

    async def events(request: Request) -> Response:
        if not allowed(request):
            return refused()

        async def stream() -> AsyncIterator[str]:
            seen = -1
            while True:
                async with board.changed:
                    if board.version == seen:
                        try:
                            await asyncio.wait_for(board.changed.wait(), 15)
                        except TimeoutError:
                            yield ": still here\n\n"
                            continue
                    seen, text = board.version, board.text
                yield f"event: model\ndata: {text}\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    async def screen(request: Request) -> Response:
        if not allowed(request):
            return refused()
        address = request.path_params["slug"]

        async def stream() -> AsyncIterator[str]:
            last = None
            while True:
                text = await asyncio.to_thread(screen_of, ws, address)
                if text != last:
                    last = text
                    yield f"event: screen\ndata: {json.dumps(text)}\n\n"
                await asyncio.sleep(SCREEN_EVERY)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    async def act(request: Request) -> Response:
        """An action on a task, through the CLI's workflow function: reply, send (a text), retry, recover, close,
        land (the plan with ``{"plan": true}``)."""
        if not allowed(request):
            return refused()
        site = request.headers.get("sec-fetch-site", "same-origin")
        origin = request.headers.get("origin")
        same = origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"
        if site not in ("same-origin", "none") or not same or not hmac.compare_digest(
                request.headers.get("x-orch-csrf", "").encode(), csrf.encode()):
            return PlainTextResponse("orch web: refused (a request from another site)\n", status_code=403)
        try:
            body = await request.json()
            assert isinstance(body, dict)
        except (ValueError, AssertionError):
            return JSONResponse({"error": 'send a JSON object, like {"text": "..."}'}, status_code=400)
        slug, action = request.path_params["slug"], request.path_params["action"]
        if action not in ACTIONS:
            return JSONResponse({"error": f"no action {action!r}"}, status_code=404)
        if action in ("reply", "send") and not str(body.get("text", "")).strip():
            return JSONResponse({"error": "a text is needed"}, status_code=400)

        def run() -> str:
            from orch.workflow.context import Ctx

            ctx = Ctx(ws)
            try:
                return ACTIONS[action](ctx, slug, body)
            finally:
                ctx.close()

        try:
            said = await asyncio.to_thread(run)
        except OrchError as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        return JSONResponse({"ok": said})

    async def model(request: Request) -> Response:
        if not allowed(request):
            return refused()
        return Response(board.text or "{}", media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        watching = asyncio.get_running_loop().create_task(board.watch())
        try:
            yield
        finally:
            watching.cancel()

    return Starlette(routes=[
        Route("/", page), Route("/t/{slug}", page), Route("/static/{name}", static),
        Route("/events", events), Route("/api/model", model), Route("/t/{slug}/screen", screen),
        Route("/t/{slug}/{action}", act, methods=["POST"]),
    ], lifespan=lifespan)


def serve(ws: Workspace, host: str, port: int, say) -> None:  # noqa: ANN001 - say: print-like
    """Serve until Ctrl-C; the URL with its token is said first."""
    import socket

    import uvicorn

    token = secrets.token_urlsafe(24)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise OrchError(f"orch web cannot listen on {host}:{port}: {exc.strerror}; choose another --port") from None
    sock.listen(64)
    shown = f"[{host}]" if ":" in host else host
    say(f"orch web: http://{shown}:{sock.getsockname()[1]}/?token={token}")
    config = uvicorn.Config(make_app(ws, token), log_level="warning", lifespan="on", timeout_graceful_shutdown=1)
    uvicorn.Server(config).run(sockets=[sock])
