"""A scripted GitHub for end-to-end tests: the real `gh` talks to it instead of GitHub.

HTTPS on 127.0.0.1 (a random port) with a throwaway certificate authority (``trustme``): `gh` trusts it through
``SSL_CERT_FILE`` and finds it through ``GH_HOST`` (a GitHub Enterprise host to `gh`: GraphQL at ``/api/graphql``,
REST under ``/api/v3/``). It answers what orch asks, from the test's script, and records every request:

* ``POST /api/graphql``: the batched query of pull requests (aliases ``t<i>`` from the variables ``n<i>`` (a PR's
  number) and ``b<i>`` (a branch)), with ``rateLimit``;
* ``POST /api/v3/repos/<owner>/<name>/pulls``: open a PR;
* ``GET /api/v3/repos/<owner>/<name>/actions/jobs/<id>/logs``: a job's log (a redirect to the log's text, as GitHub
  does);
* the ``enablePullRequestAutoMerge`` mutation (the PR's ``auto_merge`` records the method asked for).

A PR's head is the branch's sha in the bare repository the test pushes to (``bare``), or the sha the test set.
Its checks come from ``checks(pull, sha)`` (the test's function): a list of ``{"name", "conclusion", "status",
"log"}``; a check with a log gets a job id whose log the REST call serves. ``rate_limit(until)`` answers every
request before ``until`` with GitHub's 403 and ``x-ratelimit-reset``.

Usage::

    with ForgeServer(bare=str(remote)) as forge:
        forge.checks = lambda pull, sha: [{"name": "tests", "conclusion": "failure", "log": "E assert 1 == 2"}]
        env.update(forge.env())              # GH_HOST, GH_ENTERPRISE_TOKEN, SSL_CERT_FILE
        ... orch with [forge] repo = forge.repo ...
        forge.graphql_requests()             # the batched queries seen
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "forge-test-token"


@dataclass
class ScriptedPull:
    number: int
    branch: str
    base: str = "main"
    title: str = ""
    body: str = ""
    draft: bool = False
    state: str = "OPEN"
    sha: str = ""  # the head when there is no bare repository (or the branch is not in it)
    mergeable: str = "MERGEABLE"
    threads: list[dict] = field(default_factory=list)  # {"id", "path", "line", "resolved", "outdated", "comments"}
    reviews: list[dict] = field(default_factory=list)  # {"author", "state", "sha", "body", "bot"}
    comments: list[dict] = field(default_factory=list)  # {"author", "body", "bot", "at"}
    auto_merge: str = ""  # the merge method asked for by auto-merge ("" when not asked)


class ForgeServer:
    def __init__(self, owner: str = "acme", name: str = "widget", bare: str | None = None,
                 ca_dir: str | None = None) -> None:
        import tempfile

        import trustme

        self.owner, self.name, self.bare = owner, name, bare
        self.pulls: dict[int, ScriptedPull] = {}
        self.checks: Callable[[ScriptedPull, str], list[dict]] = lambda pull, sha: []
        self.requests: list[dict[str, Any]] = []
        self.logs: dict[int, str] = {}
        self.limited_until = 0.0
        self.budget = 5000
        self._jobs: dict[tuple[int, str, str], int] = {}
        self._lock = threading.Lock()
        self._ca = trustme.CA()
        self._cert = self._ca.issue_cert("127.0.0.1", "localhost")
        self._dir = ca_dir or tempfile.mkdtemp(prefix="orch-forge-")
        self.ca_file = os.path.join(self._dir, "forge-ca.pem")
        self._ca.cert_pem.write_to_path(self.ca_file)
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle --------------------------------------------------------------------------------------------------

    def start(self) -> ForgeServer:
        forge = self

        class Handler(_Handler):
            server_forge = forge

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._cert.configure_cert(context)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ForgeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def repo(self) -> str:
        """``host/owner/name``, as orch's ``[forge] repo`` takes it."""
        return f"{self.host}/{self.owner}/{self.name}"

    def env(self) -> dict[str, str]:
        """What a process running `gh` needs to reach this forge."""
        config = os.path.join(self._dir, "gh-config")
        os.makedirs(config, exist_ok=True)
        return {"GH_HOST": self.host, "GH_ENTERPRISE_TOKEN": TOKEN, "SSL_CERT_FILE": self.ca_file,
                "GH_CONFIG_DIR": config}

    # -- the script -------------------------------------------------------------------------------------------------

    def add_pull(self, branch: str, **kw: Any) -> ScriptedPull:
        with self._lock:
            number = max(self.pulls, default=0) + 1
            pull = ScriptedPull(number, branch, **kw)
            self.pulls[number] = pull
            return pull

    def url(self, number: int) -> str:
        return f"https://{self.host}/{self.owner}/{self.name}/pull/{number}"

    def head(self, pull: ScriptedPull) -> str:
        if self.bare:
            proc = subprocess.run(["git", "-C", self.bare, "rev-parse", "--verify", "-q",
                                   f"refs/heads/{pull.branch}"], capture_output=True, text=True, check=False)
            if proc.returncode == 0:
                return proc.stdout.strip()
        return pull.sha

    def rate_limit(self, until: float) -> None:
        """Every request before ``until`` (rounded up to a second, as GitHub's reset time is) is refused with
        GitHub's rate-limit answer."""
        import math

        self.limited_until = math.ceil(until)

    def graphql_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == "/api/graphql"]

    # -- answers ----------------------------------------------------------------------------------------------------

    def _check_nodes(self, pull: ScriptedPull, sha: str) -> list[dict]:
        nodes = []
        for c in self.checks(pull, sha):
            status = c.get("status", "completed")
            job = 0
            if c.get("log") is not None:
                key = (pull.number, sha, c["name"])
                with self._lock:
                    job = self._jobs.setdefault(key, 9000 + len(self._jobs))
                    self.logs[job] = c["log"]
            nodes.append({"__typename": "CheckRun", "databaseId": job or None, "name": c["name"],
                          "status": status.upper(),
                          "conclusion": c.get("conclusion", "").upper() if status == "completed" else None,
                          "detailsUrl": f"https://{self.host}/{self.owner}/{self.name}/actions/runs/1/job/{job}"})
        return nodes

    def pull_node(self, pull: ScriptedPull) -> dict:
        sha = self.head(pull)

        def author(name: str, bot: bool) -> dict:
            return {"login": name, "__typename": "Bot" if bot else "User"}

        def comment(c: dict, i: str) -> dict:
            return {"id": c.get("id", i), "author": author(c["author"], c.get("bot", False)), "body": c["body"],
                    "url": f"{self.url(pull.number)}#{c.get('id', i)}", "createdAt": c.get("at", "2026-12-01T00:00:00Z")}

        decision = ""
        states = {r["author"]: r["state"] for r in pull.reviews if not r.get("bot")}
        if "CHANGES_REQUESTED" in states.values():
            decision = "CHANGES_REQUESTED"
        elif "APPROVED" in states.values():
            decision = "APPROVED"
        return {
            "id": f"PR_{pull.number}", "autoMergeRequest": {"enabledAt": "2026-12-01T00:00:00Z"} if pull.auto_merge
            else None,
            "number": pull.number, "url": self.url(pull.number), "state": pull.state, "isDraft": pull.draft,
            "headRefName": pull.branch, "headRefOid": sha, "baseRefName": pull.base, "mergeable": pull.mergeable,
            "mergeStateStatus": "CLEAN" if pull.mergeable == "MERGEABLE" else "DIRTY", "reviewDecision": decision,
            "commits": {"nodes": [{"commit": {"oid": sha, "statusCheckRollup": {
                "contexts": {"nodes": self._check_nodes(pull, sha)}}}}]},
            "reviewThreads": {"nodes": [
                {"id": t["id"], "isResolved": t.get("resolved", False), "isOutdated": t.get("outdated", False),
                 "path": t.get("path"), "line": t.get("line"),
                 "comments": {"nodes": [comment(c, f"{t['id']}-c{i}") for i, c in enumerate(t["comments"])]}}
                for t in pull.threads]},
            "reviews": {"nodes": [
                {"id": f"R{pull.number}-{i}", "author": author(r["author"], r.get("bot", False)),
                 "state": r["state"], "body": r.get("body", ""), "url": f"{self.url(pull.number)}#review-{i}",
                 "submittedAt": "2026-12-01T00:00:00Z", "commit": {"oid": r.get("sha", sha)}}
                for i, r in enumerate(pull.reviews)]},
            "comments": {"nodes": [comment(c, f"IC{pull.number}-{i}") for i, c in enumerate(pull.comments)]},
        }


class _Handler(BaseHTTPRequestHandler):
    server_forge: ForgeServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silent
        pass

    def _send(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        forge = self.server_forge
        raw = self._read_body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        entry = {"method": self.command, "path": self.path, "body": body, "at": time.time()}
        with forge._lock:
            forge.requests.append(entry)
        limited = time.time() < forge.limited_until
        reset = str(int(forge.limited_until if limited else time.time() + 3600))
        rate = {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": str(forge.budget), "X-RateLimit-Reset": reset}
        if self.headers.get("Authorization") != f"token {TOKEN}":
            entry["status"] = 401
            return self._send(401, {"message": "Bad credentials"})
        if limited:
            entry["status"] = 403
            return self._send(403, {"message": "API rate limit exceeded for user."},
                              {**rate, "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})
        with forge._lock:
            forge.budget -= 1
        rest = f"/api/v3/repos/{forge.owner}/{forge.name}/"
        if self.path == "/api/graphql" and self.command == "POST":
            entry["status"] = 200
            return self._send(200, self._graphql(body if isinstance(body, dict) else {}), rate)
        if self.path == rest + "pulls" and self.command == "POST" and isinstance(body, dict):
            pull = forge.add_pull(body["head"], base=body.get("base", "main"), title=body.get("title", ""),
                                  body=body.get("body", ""), draft=bool(body.get("draft")))
            entry["status"] = 201
            return self._send(201, {"number": pull.number, "html_url": forge.url(pull.number)}, rate)
        if self.path.startswith(rest + "actions/jobs/") and self.path.endswith("/logs"):
            job = self.path[len(rest + "actions/jobs/"):-len("/logs")]
            if job.isdigit() and int(job) in forge.logs:
                entry["status"] = 302
                return self._send(302, b"", {"Location": f"https://{forge.host}/blob/job-logs/{job}"})
        if self.path.startswith("/blob/job-logs/"):
            job = self.path.rsplit("/", 1)[-1]
            if job.isdigit() and int(job) in forge.logs:
                entry["status"] = 200
                data = forge.logs[int(job)].encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return None
        entry["status"] = 404
        return self._send(404, {"message": "Not Found"})

    do_GET = do_POST = _handle

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":  # (gh sends a body read from stdin so)
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _graphql(self, body: dict) -> dict:
        forge = self.server_forge
        variables = body.get("variables") or {}
        query = str(body.get("query", ""))
        if "enablePullRequestAutoMerge" in query:
            number = str(variables.get("id", "")).removeprefix("PR_")
            pull = forge.pulls.get(int(number)) if number.isdigit() else None
            if pull is None:
                return {"data": None, "errors": [{"type": "NOT_FOUND", "message": "no such pull request"}]}
            pull.auto_merge = str(variables.get("method", ""))
            return {"data": {"enablePullRequestAutoMerge": {"pullRequest": {"number": pull.number}}}}
        if variables.get("owner") != forge.owner or variables.get("name") != forge.name:
            return {"data": {"repository": None}, "errors": [{"type": "NOT_FOUND", "message": "no such repository"}]}
        repo: dict[str, Any] = {}
        for key, value in variables.items():
            if key[:1] not in "nb" or not key[1:].isdigit():
                continue
            alias = f"t{key[1:]}"
            assert f"{alias}: " in query, f"the query has no field {alias}"
            if key[0] == "n":
                pull = forge.pulls.get(int(value))
                repo[alias] = forge.pull_node(pull) if pull else None
            else:
                found = [p for p in sorted(forge.pulls.values(), key=lambda p: -p.number) if p.branch == value]
                repo[alias] = {"nodes": [forge.pull_node(p) for p in found[:1]]}
        reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        return {"data": {"rateLimit": {"limit": 5000, "remaining": forge.budget, "resetAt": reset, "cost": 1},
                         "repository": repo}}
