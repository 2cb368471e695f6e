"""A scripted model server for end-to-end tests: real coding agents talk to it instead of a real model.

Pure standard library (``http.server`` + ``threading``). It listens on 127.0.0.1 on a random port and speaks

* the Anthropic Messages API (``POST /v1/messages``, streaming SSE and plain JSON, plus
  ``/v1/messages/count_tokens``) as Claude Code uses it,
* the OpenAI Responses API (``POST /v1/responses``, streaming SSE) as Codex uses it,
* OpenAI Chat Completions (``POST /v1/chat/completions``, streaming and not) for Aider and the like,
* ``GET /v1/models`` (a one-model list); any other path gets ``404`` with a JSON error (and is recorded).

Usage::

    script = [
        {"write": {"path": "hello.txt", "content": "hello\\n"}},
        {"bash": "git add hello.txt && git commit -qm 'add hello'"},
        {"bash": "sh -c 'echo done > /tmp/marker'"},
        {"text": "All done."},
    ]
    with ModelServer(script) as srv:
        env = {"ANTHROPIC_BASE_URL": srv.url, ...}          # Claude Code
        # Codex: -c model_providers.mock.base_url=srv.url + "/v1"   (see AGENTS-NOTES.md)
        ...
        assert srv.turns_served == 4
        srv.requests                                        # every request, see below

Script format -- a list of turns; each *main* request the agent makes is answered with the next turn:

    {"text": "..."}                        a plain assistant message; the agent ends its turn
    {"bash": "CMD"}                        one shell tool call running CMD (a shell string)
    {"write": {"path": P, "content": C}}   one tool call writing C to P (relative paths are resolved against
                                           the agent's working directory, taken from the request, or ``cwd``)
    {"tool": {"name": N, "input": {...}}}  one raw tool call, passed through as is (any agent tool)
    {"tools": [STEP, STEP, ...]}           several tool calls in one turn (each STEP a bash/write/tool dict)
    {..., "say": "..."}                    optional text sent before the tool calls of a bash/write/tool(s) turn

How a step maps per API:

* Anthropic (Claude Code): ``bash`` -> ``tool_use`` ``Bash`` ``{"command": CMD, "description": ...}``;
  ``write`` -> ``tool_use`` ``Write`` ``{"file_path": ABS, "content": C}`` (Claude's Write wants an
  absolute path).
* Responses (Codex): the shell function Codex offers in the request's ``tools`` list is used
  (``exec_command`` ``{"cmd": CMD}``, ``shell_command`` ``{"command": CMD}``, or ``shell``
  ``{"command": ["bash", "-lc", CMD]}``, whichever is offered, in that order). ``write`` becomes a shell
  command with a quoted here-document.
* Chat Completions: ``tool_calls`` with function ``bash`` ``{"command": CMD}`` / ``write``
  ``{"path": P, "content": C}`` unless the request offers tools named otherwise (then the first offered tool).

Main versus side requests (side requests never consume a turn; they get ``side_text``):

* Anthropic: a request is *main* when it offers tools (non-empty ``tools``). Claude Code 2.1.328's only side
  request seen is session-title generation (same model, no tools; absent with
  ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1``); quota probes and the like would send no tools either.
* Responses: *main* when it offers tools. Codex 0.169 always offers them in the agent loop; its per-turn
  task-title request ("Generate a concise, single-line task title...") has none.
* Chat Completions: every request is main (Aider sends no tools), unless ``chat_side`` returns true.

When the script is exhausted every further main request gets ``final_text`` (so the agent ends its turn).
Several agents can share one server with separate scripts: pass ``{"lane": [turns...]}`` as the script and
point each agent at ``srv.lane_url("lane")`` (requests under ``/lane/<name>/...``); plain ``srv.url``
uses the lane ``"default"``.

``srv.requests`` records every request as a dict: ``path``, ``method``, ``lane``, ``api`` (anthropic,
responses, chat, other), ``kind`` (main, side, other), ``model``, ``stream``, ``tools`` (names offered),
``text`` (the last user text: the newest user message, minus agent-injected context blocks),
``summary`` (that text, shortened), ``tool_results`` (list of ``{"id", "output", "is_error"}``
for results of calls this server issued, each reported once), ``turn`` (index of the turn served, or
None), ``reply`` (short description of the answer) and ``body`` (the parsed JSON body). With
``log_path`` every request (with headers) is also appended to that file as JSON lines.
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import re
import shlex
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Turn = dict[str, Any]

_CWD_PATTERNS = (
    re.compile(r"Primary working directory:\s*(\S+)"),
    re.compile(r"Working directory:\s*(\S+)"),
    re.compile(r"<cwd>\s*([^<\s]+)\s*</cwd>"),
    re.compile(r'"cwd"\s*:\s*"([^"]+)"'),
)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _content_text(content: Any) -> str:
    """The text of an Anthropic / OpenAI message content (a string or a list of blocks)."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if isinstance(block, dict):
            if block.get("type") in ("text", "input_text", "output_text"):
                parts.append(str(block.get("text", "")))
            elif block.get("type") == "tool_result":
                parts.append(_content_text(block.get("content")))
    return "\n".join(parts)


def _user_text(content: Any, typed_only: bool = False) -> str:
    """The last text block of a user message that is not an agent-injected context block (or all its text)."""
    if isinstance(content, str):
        return "" if typed_only and content.lstrip().startswith("<system-reminder>") else content
    if isinstance(content, list):
        texts = [str(b.get("text", "")) for b in content if isinstance(b, dict)
                 and b.get("type") in ("text", "input_text")]
        texts = [t for t in texts if not re.match(r"\s*<(system-reminder|environment_context|user_instructions"
                                                    r"|permissions instructions)", t) and t.strip()]
        if texts:
            return texts[-1]
    return "" if typed_only else _content_text(content)


def _heredoc(path: str, content: str) -> str:
    """A shell command writing ``content`` to ``path`` (a quoted here-document, or printf without a final newline)."""
    mkdir = f"mkdir -p \"$(dirname {shlex.quote(path)})\" && "
    if not content.endswith("\n"):
        return mkdir + f"printf %s {shlex.quote(content)} > {shlex.quote(path)}"
    tag = "ORCH_EOF"
    while tag in content:
        tag += "_"
    return mkdir + f"cat > {shlex.quote(path)} <<'{tag}'\n{content}{tag}"


class ModelServer:
    """A scripted model endpoint; see the module docstring."""

    def __init__(
        self,
        script: Iterable[Turn] | dict[str, Iterable[Turn]] = (),
        *,
        final_text: str = "Done.",
        side_text: str = "OK",
        cwd: str | None = None,
        log_path: str | os.PathLike[str] | None = None,
        delay: float = 0.0,
        chat_side: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        if isinstance(script, dict):
            self.scripts = {lane: list(turns) for lane, turns in script.items()}
        else:
            self.scripts = {"default": list(script)}
        self.final_text = final_text
        self.side_text = side_text
        self.cwd = cwd
        self.log_path = os.fspath(log_path) if log_path else None
        self.delay = delay
        self.chat_side = chat_side
        self.requests: list[dict[str, Any]] = []
        self._next: dict[str, int] = {}
        self._issued: dict[str, str] = {}  # call id -> lane
        self._reported: set[str] = set()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> ModelServer:
        server = self

        class Handler(_Handler):
            model_server = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="model-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lane_url(self, lane: str) -> str:
        return f"{self.url}/lane/{lane}"

    # ---- script state ------------------------------------------------------------------------------------

    def add_turns(self, turns: Iterable[Turn], lane: str = "default") -> None:
        with self._lock:
            self.scripts.setdefault(lane, []).extend(turns)

    def turns_served(self, lane: str = "default") -> int:
        return self._next.get(lane, 0)

    def remaining(self, lane: str = "default") -> int:
        return len(self.scripts.get(lane, [])) - self._next.get(lane, 0)

    def main_requests(self, lane: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["kind"] == "main" and (lane is None or r["lane"] == lane)]

    def tool_results(self, lane: str | None = None) -> list[dict[str, Any]]:
        return [t for r in self.requests if lane is None or r["lane"] == lane for t in r["tool_results"]]

    def _take_turn(self, lane: str) -> tuple[int | None, Turn]:
        with self._lock:
            index = self._next.get(lane, 0)
            turns = self.scripts.get(lane, [])
            if index < len(turns):
                self._next[lane] = index + 1
                return index, turns[index]
            return None, {"text": self.final_text}

    def new_id(self, prefix: str, lane: str | None = None) -> str:
        value = f"{prefix}{next(self._ids):04d}{uuid.uuid4().hex[:12]}"
        if lane is not None:
            with self._lock:
                self._issued[value] = lane
        return value

    def _new_results(self, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        fresh = []
        with self._lock:
            for result in results:
                rid = result["id"]
                if rid in self._issued and rid not in self._reported:
                    self._reported.add(rid)
                    fresh.append(result)
        return fresh

    def _record(self, entry: dict[str, Any], headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append(entry)
            if self.log_path:
                line = dict(entry, headers=headers, time=time.time())
                with open(self.log_path, "a", encoding="utf-8") as log:
                    log.write(json.dumps(line, default=str) + "\n")


def _steps(turn: Turn) -> list[Turn]:
    if "tools" in turn:
        return list(turn["tools"])
    if any(key in turn for key in ("bash", "write", "tool")):
        return [turn]
    return []


def _cwd_from(body: dict[str, Any], fallback: str | None) -> str | None:
    texts = []
    system = body.get("system")
    texts.append(system if isinstance(system, str) else _content_text(system))
    texts.append(str(body.get("instructions") or ""))
    for message in body.get("messages") or body.get("input") or []:
        if isinstance(message, dict):
            texts.append(_content_text(message.get("content")))
    for text in texts:
        for pattern in _CWD_PATTERNS:
            found = pattern.search(text or "")
            if found:
                return found.group(1)
    return fallback


def _abs(path: str, cwd: str | None) -> str:
    if os.path.isabs(path) or not cwd:
        return path
    return os.path.join(cwd, path)


class _Handler(BaseHTTPRequestHandler):
    model_server: ModelServer
    protocol_version = "HTTP/1.0"  # one request per connection; streams end when the connection closes

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the default stderr log
        pass

    # ---- plumbing ---------------------------------------------------------------------------------------

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        if encoding == "gzip":
            raw = gzip.decompress(raw)
        elif encoding == "deflate":
            raw = zlib.decompress(raw)
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            return {"_raw": raw[:2000].decode("utf-8", "replace"), "_encoding": encoding}

    def _split_lane(self) -> tuple[str, str]:
        path = self.path.split("?", 1)[0]
        found = re.match(r"^/lane/([^/]+)(/.*)$", path)
        if found:
            return found.group(1), found.group(2)
        return "default", path

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", "req_" + uuid.uuid4().hex[:20])
        self.end_headers()
        self.wfile.write(data)

    def _sse_start(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.send_header("request-id", "req_" + uuid.uuid4().hex[:20])
        self.end_headers()

    def _event(self, name: str | None, payload: Any) -> None:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        chunk = (f"event: {name}\n" if name else "") + f"data: {data}\n\n"
        self.wfile.write(chunk.encode())
        self.wfile.flush()

    # ---- dispatch ---------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        lane, path = self._split_lane()
        srv = self.model_server
        entry = _entry("GET", self.path, lane, "other", {})
        if path.rstrip("/") in ("/v1/models", "/models"):
            entry["reply"] = "models"
            srv._record(entry, dict(self.headers))
            now = int(time.time())
            self._json(
                200,
                {
                    "object": "list",
                    "data": [{"id": "mock-model", "object": "model", "created": now, "owned_by": "orch",
                              "type": "model", "display_name": "Mock", "created_at": "2025-01-01T00:00:00Z"}],
                    "models": [],
                    "has_more": False,
                    "first_id": "mock-model",
                    "last_id": "mock-model",
                },
            )
            return
        entry["reply"] = "404"
        srv._record(entry, dict(self.headers))
        self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": f"no route {path}"}})

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.end_headers()

    def do_POST(self) -> None:
        lane, path = self._split_lane()
        body = self._body()
        srv = self.model_server
        if srv.delay:
            time.sleep(srv.delay)
        headers = dict(self.headers)
        if path == "/v1/messages/count_tokens":
            entry = _entry("POST", self.path, lane, "other", body, api="anthropic")
            entry["reply"] = "count_tokens"
            srv._record(entry, headers)
            self._json(200, {"input_tokens": max(1, len(json.dumps(body)) // 4)})
        elif path == "/v1/messages":
            self._anthropic(lane, body, headers)
        elif path in ("/v1/responses", "/responses"):
            self._responses(lane, body, headers)
        elif path in ("/v1/chat/completions", "/chat/completions"):
            self._chat(lane, body, headers)
        else:
            entry = _entry("POST", self.path, lane, "other", body)
            entry["reply"] = "404"
            srv._record(entry, headers)
            self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": f"no route {path}"}})

    # ---- Anthropic Messages -----------------------------------------------------------------------------

    def _anthropic(self, lane: str, body: dict[str, Any], headers: dict[str, str]) -> None:
        srv = self.model_server
        main = bool(body.get("tools"))
        entry = _entry("POST", self.path, lane, "main" if main else "side", body, api="anthropic")
        messages = body.get("messages") or []
        entry["text"] = ""
        for message in reversed(messages):  # the newest text the user typed (not tool results, not reminders)
            if isinstance(message, dict) and message.get("role") == "user":
                text = _user_text(message.get("content"), typed_only=True)
                if text:
                    entry["text"] = text
                    break
        entry["summary"] = _short(entry["text"])
        results = []
        for message in messages:
            if isinstance(message, dict) and isinstance(message.get("content"), list):
                for block in message["content"]:
                    if isinstance(block, dict) and block.get("type") == "tool_result":
                        results.append({"id": block.get("tool_use_id"), "is_error": bool(block.get("is_error")),
                                        "output": _content_text(block.get("content"))})
        entry["tool_results"] = srv._new_results(results)
        if main:
            index, turn = srv._take_turn(lane)
        else:
            index, turn = None, {"text": srv.side_text}
        entry["turn"] = index
        cwd = _cwd_from(body, srv.cwd)
        blocks: list[dict[str, Any]] = []
        text = turn.get("text") if "text" in turn else turn.get("say")
        if text:
            blocks.append({"type": "text", "text": text})
        for step in _steps(turn):
            name, args = _anthropic_tool(step, cwd)
            blocks.append({"type": "tool_use", "id": srv.new_id("toolu_", lane), "name": name, "input": args})
        if not blocks:
            blocks.append({"type": "text", "text": srv.final_text})
        stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
        entry["reply"] = _describe(blocks)
        srv._record(entry, headers)
        model = body.get("model", "mock-model")
        message_id = srv.new_id("msg_")
        usage = {"input_tokens": 10, "output_tokens": 1, "cache_creation_input_tokens": 0,
                 "cache_read_input_tokens": 0}
        if not body.get("stream"):
            self._json(200, {"id": message_id, "type": "message", "role": "assistant", "model": model,
                             "content": blocks, "stop_reason": stop, "stop_sequence": None,
                             "usage": dict(usage, output_tokens=20)})
            return
        self._sse_start()
        self._event("message_start", {"type": "message_start", "message": {
            "id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": usage}})
        self._event("ping", {"type": "ping"})
        for index_, block in enumerate(blocks):
            if block["type"] == "text":
                self._event("content_block_start", {"type": "content_block_start", "index": index_,
                                                    "content_block": {"type": "text", "text": ""}})
                self._event("content_block_delta", {"type": "content_block_delta", "index": index_,
                                                    "delta": {"type": "text_delta", "text": block["text"]}})
            else:
                self._event("content_block_start", {"type": "content_block_start", "index": index_,
                                                    "content_block": dict(block, input={})})
                self._event("content_block_delta", {"type": "content_block_delta", "index": index_, "delta": {
                    "type": "input_json_delta", "partial_json": json.dumps(block["input"])}})
            self._event("content_block_stop", {"type": "content_block_stop", "index": index_})
        self._event("message_delta", {"type": "message_delta",
                                      "delta": {"stop_reason": stop, "stop_sequence": None},
                                      "usage": {"output_tokens": 20}})
        self._event("message_stop", {"type": "message_stop"})

    # ---- OpenAI Responses -------------------------------------------------------------------------------

    def _responses(self, lane: str, body: dict[str, Any], headers: dict[str, str]) -> None:
        srv = self.model_server
        tools = body.get("tools") or []
        main = bool(tools)
        entry = _entry("POST", self.path, lane, "main" if main else "side", body, api="responses")
        items = body.get("input") if isinstance(body.get("input"), list) else []
        user_texts = [_user_text(i.get("content")) for i in items
                      if isinstance(i, dict) and i.get("role") == "user"]
        if isinstance(body.get("input"), str):
            user_texts.append(body["input"])
        entry["text"] = user_texts[-1] if user_texts else ""
        entry["summary"] = _short(entry["text"])
        results = []
        for item in items:
            if isinstance(item, dict) and item.get("type") in ("function_call_output", "custom_tool_call_output"):
                output = item.get("output")
                if isinstance(output, dict):
                    output = output.get("content", json.dumps(output))
                elif isinstance(output, list):
                    output = _content_text(output)
                results.append({"id": item.get("call_id"), "output": output, "is_error": False})
        entry["tool_results"] = srv._new_results(results)
        if main:
            index, turn = srv._take_turn(lane)
        else:
            index, turn = None, {"text": srv.side_text}
        entry["turn"] = index
        cwd = _cwd_from(body, srv.cwd)
        out: list[dict[str, Any]] = []
        text = turn.get("text") if "text" in turn else turn.get("say")
        if text:
            out.append({"type": "message", "id": srv.new_id("msg_"), "role": "assistant", "status": "completed",
                        "content": [{"type": "output_text", "text": text, "annotations": []}]})
        names = [t.get("name") for t in tools if isinstance(t, dict)]
        for step in _steps(turn):
            name, args = _responses_tool(step, names, cwd)
            out.append({"type": "function_call", "id": srv.new_id("fc_"), "call_id": srv.new_id("call_", lane),
                        "name": name, "arguments": json.dumps(args), "status": "completed"})
        if not out:
            out.append({"type": "message", "id": srv.new_id("msg_"), "role": "assistant", "status": "completed",
                        "content": [{"type": "output_text", "text": srv.final_text, "annotations": []}]})
        entry["reply"] = _describe(out)
        srv._record(entry, headers)
        response_id = srv.new_id("resp_")
        model = body.get("model", "mock-model")
        base = {"id": response_id, "object": "response", "created_at": int(time.time()), "model": model,
                "status": "in_progress", "output": []}
        usage = {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 20,
                 "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 30}
        if not body.get("stream"):
            self._json(200, dict(base, status="completed", output=out, usage=usage))
            return
        self._sse_start()
        seq = itertools.count()
        self._event("response.created", {"type": "response.created", "sequence_number": next(seq),
                                         "response": base})
        self._event("response.in_progress", {"type": "response.in_progress", "sequence_number": next(seq),
                                             "response": base})
        for position, item in enumerate(out):
            if item["type"] == "message":
                self._event("response.output_item.added", {
                    "type": "response.output_item.added", "sequence_number": next(seq), "output_index": position,
                    "item": dict(item, status="in_progress", content=[])})
                self._event("response.content_part.added", {
                    "type": "response.content_part.added", "sequence_number": next(seq), "item_id": item["id"],
                    "output_index": position, "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": []}})
                text_ = item["content"][0]["text"]
                self._event("response.output_text.delta", {
                    "type": "response.output_text.delta", "sequence_number": next(seq), "item_id": item["id"],
                    "output_index": position, "content_index": 0, "delta": text_})
                self._event("response.output_text.done", {
                    "type": "response.output_text.done", "sequence_number": next(seq), "item_id": item["id"],
                    "output_index": position, "content_index": 0, "text": text_})
                self._event("response.content_part.done", {
                    "type": "response.content_part.done", "sequence_number": next(seq), "item_id": item["id"],
                    "output_index": position, "content_index": 0, "part": item["content"][0]})
            else:
                self._event("response.output_item.added", {
                    "type": "response.output_item.added", "sequence_number": next(seq), "output_index": position,
                    "item": dict(item, status="in_progress", arguments="")})
                self._event("response.function_call_arguments.delta", {
                    "type": "response.function_call_arguments.delta", "sequence_number": next(seq),
                    "item_id": item["id"], "output_index": position, "delta": item["arguments"]})
                self._event("response.function_call_arguments.done", {
                    "type": "response.function_call_arguments.done", "sequence_number": next(seq),
                    "item_id": item["id"], "output_index": position, "arguments": item["arguments"]})
            self._event("response.output_item.done", {
                "type": "response.output_item.done", "sequence_number": next(seq), "output_index": position,
                "item": item})
        self._event("response.completed", {"type": "response.completed", "sequence_number": next(seq),
                                           "response": dict(base, status="completed", output=out, usage=usage)})

    # ---- OpenAI Chat Completions --------------------------------------------------------------------------

    def _chat(self, lane: str, body: dict[str, Any], headers: dict[str, str]) -> None:
        srv = self.model_server
        side = bool(srv.chat_side and srv.chat_side(body))
        entry = _entry("POST", self.path, lane, "side" if side else "main", body, api="chat")
        messages = body.get("messages") or []
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        entry["text"] = _content_text(users[-1].get("content")) if users else ""
        entry["summary"] = _short(entry["text"])
        results = [{"id": m.get("tool_call_id"), "output": _content_text(m.get("content")), "is_error": False}
                   for m in messages if isinstance(m, dict) and m.get("role") == "tool"]
        entry["tool_results"] = srv._new_results(results)
        if side:
            index, turn = None, {"text": srv.side_text}
        else:
            index, turn = srv._take_turn(lane)
        entry["turn"] = index
        cwd = _cwd_from(body, srv.cwd)
        names = [(t.get("function") or {}).get("name") for t in body.get("tools") or [] if isinstance(t, dict)]
        text = turn.get("text") if "text" in turn else turn.get("say")
        calls = []
        for step in _steps(turn):
            name, args = _chat_tool(step, names, cwd)
            calls.append({"id": srv.new_id("call_", lane), "type": "function",
                          "function": {"name": name, "arguments": json.dumps(args)}})
        if not text and not calls:
            text = srv.final_text
        finish = "tool_calls" if calls else "stop"
        entry["reply"] = (f"text: {_short(text or '', 80)} " if text else "") + " ".join(
            f"{c['function']['name']}({_short(c['function']['arguments'], 80)})" for c in calls)
        srv._record(entry, headers)
        chat_id = srv.new_id("chatcmpl-")
        model = body.get("model", "mock-model")
        created = int(time.time())
        usage = {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if calls:
                message["tool_calls"] = calls
            self._json(200, {"id": chat_id, "object": "chat.completion", "created": created, "model": model,
                             "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                             "usage": usage})
            return
        self._sse_start()

        def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> None:
            self._event(None, dict({"id": chat_id, "object": "chat.completion.chunk", "created": created,
                                    "model": model, "choices": [{"index": 0, "delta": delta,
                                                                 "finish_reason": finish_reason}]}, **extra))

        chunk({"role": "assistant", "content": ""})
        if text:
            chunk({"content": text})
        for position, call in enumerate(calls):
            chunk({"tool_calls": [dict(call, index=position)]})
        chunk({}, finish)
        if (body.get("stream_options") or {}).get("include_usage"):
            self._event(None, {"id": chat_id, "object": "chat.completion.chunk", "created": created,
                               "model": model, "choices": [], "usage": usage})
        self._event(None, "[DONE]")


def _entry(method: str, path: str, lane: str, kind: str, body: Any, api: str = "other") -> dict[str, Any]:
    tools = []
    if isinstance(body, dict):
        for tool in body.get("tools") or []:
            if isinstance(tool, dict):
                tools.append(tool.get("name") or (tool.get("function") or {}).get("name") or tool.get("type"))
    return {"method": method, "path": path, "lane": lane, "api": api, "kind": kind,
            "model": body.get("model") if isinstance(body, dict) else None,
            "stream": bool(body.get("stream")) if isinstance(body, dict) else False,
            "tools": tools, "text": "", "summary": "", "tool_results": [], "turn": None, "reply": "", "body": body}


def _describe(items: list[dict[str, Any]]) -> str:
    parts = []
    for item in items:
        if item["type"] == "text":
            parts.append(f"text: {_short(item['text'], 80)}")
        elif item["type"] == "message":
            parts.append(f"text: {_short(item['content'][0]['text'], 80)}")
        elif item["type"] == "tool_use":
            parts.append(f"{item['name']}({_short(json.dumps(item['input']), 80)})")
        else:
            parts.append(f"{item['name']}({_short(item['arguments'], 80)})")
    return " ".join(parts)


def _anthropic_tool(step: Turn, cwd: str | None) -> tuple[str, dict[str, Any]]:
    if "bash" in step:
        return "Bash", {"command": step["bash"], "description": _short(step["bash"], 60)}
    if "write" in step:
        spec = step["write"]
        return "Write", {"file_path": _abs(spec["path"], cwd), "content": spec["content"]}
    tool = step["tool"]
    return tool["name"], dict(tool.get("input") or {})


def _responses_tool(step: Turn, offered: list[str | None], cwd: str | None) -> tuple[str, dict[str, Any]]:
    if "tool" in step:
        tool = step["tool"]
        return tool["name"], dict(tool.get("input") or {})
    if "bash" in step:
        command = step["bash"]
    else:
        spec = step["write"]
        command = _heredoc(spec["path"], spec["content"])
    if "exec_command" in offered:
        return "exec_command", {"cmd": command}
    if "shell_command" in offered:
        return "shell_command", {"command": command}
    return "shell", {"command": ["bash", "-lc", command]}


def _chat_tool(step: Turn, offered: list[str | None], cwd: str | None) -> tuple[str, dict[str, Any]]:
    if "tool" in step:
        tool = step["tool"]
        return tool["name"], dict(tool.get("input") or {})
    if "bash" in step:
        name, args = "bash", {"command": step["bash"]}
    else:
        spec = step["write"]
        name, args = "write", {"path": spec["path"], "content": spec["content"]}
    if offered and name not in offered:
        name = offered[0] or name
    return name, args
