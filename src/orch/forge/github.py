"""GitHub as orch's forge, through `gh api` (orch/gh.py).

Every task's pull request is read in one GraphQL request per pass: an aliased field per task (``t0``, ``t1``, ...),
by number when the PR is known, else by the task's branch, with the rate limit's budget in the same answer.
GraphQL answers carry no ETag (GitHub offers conditional requests on REST only), so the pass asks at most once per
``forge.interval`` and not at all while a rate limit runs. A job's log is read once per job (REST), a PR opened
by REST.
"""

from __future__ import annotations

import time

from orch import gh
from orch.forge import Budget, Check, Comment, Opened, Pull, PullReview, Thread, Want

PR_FIELDS = """
id number url state isDraft headRefName headRefOid baseRefName mergeable mergeStateStatus reviewDecision autoMergeRequest { enabledAt }
commits(last: 1) { nodes { commit { oid statusCheckRollup { contexts(first: 100) { nodes {
  __typename
  ... on CheckRun { databaseId name status conclusion detailsUrl }
  ... on StatusContext { context state targetUrl }
} } } } } }
reviewThreads(first: 50) { nodes { id isResolved isOutdated path line
  comments(first: 20) { nodes { id author { login __typename } body url createdAt } } } }
reviews(last: 50) { nodes { id author { login __typename } state body url submittedAt commit { oid } } }
comments(last: 50) { nodes { id author { login __typename } body url createdAt } }
"""


def query(wants: list[Want]) -> tuple[str, dict[str, object]]:
    """The one GraphQL request for ``wants`` (aliases t0, t1, ... in their order) and its variables."""
    decl = ["$owner: String!", "$name: String!"]
    parts = []
    variables: dict[str, object] = {}
    for i, w in enumerate(wants):
        if w.number:
            decl.append(f"$n{i}: Int!")
            variables[f"n{i}"] = w.number
            parts.append(f"t{i}: pullRequest(number: $n{i}) {{ ...pr }}")
        else:
            decl.append(f"$b{i}: String!")
            variables[f"b{i}"] = w.branch
            parts.append(f"t{i}: pullRequests(headRefName: $b{i}, first: 1, "
                         f"orderBy: {{field: CREATED_AT, direction: DESC}}) {{ nodes {{ ...pr }} }}")
    text = (f"query({', '.join(decl)}) {{\n  rateLimit {{ limit remaining resetAt cost }}\n"
            f"  repository(owner: $owner, name: $name) {{\n    " + "\n    ".join(parts) + "\n  }\n}\n"
            f"fragment pr on PullRequest {{{PR_FIELDS}}}\n")
    return text, variables


class GitHub:
    """GitHub (or a GitHub Enterprise host) for one repository, ``host/owner/name`` or ``owner/name``."""

    def __init__(self, repo: str) -> None:
        parts = repo.split("/")
        self.host = parts[0] if len(parts) == 3 else "github.com"
        self.owner, self.name = parts[-2], parts[-1]
        self.repo = repo

    def pulls(self, wants: list[Want]) -> tuple[dict[str, Pull | None], Budget]:
        text, variables = query(wants)
        variables.update(owner=self.owner, name=self.name)
        answer = gh.api("graphql", self.host, "POST", {"query": text, "variables": variables})
        found = answer.json()
        data = found.get("data") if isinstance(found, dict) else None
        errors = found.get("errors") if isinstance(found, dict) else None
        if answer.status >= 400 or not isinstance(data, dict) or (errors and not data.get("repository")):
            why = (errors[0].get("message") if errors and isinstance(errors[0], dict) else "") or answer.message()
            raise gh.GhError(f"GitHub refused the query of pull requests ({answer.status}): {why}")
        if errors and any(isinstance(e, dict) and e.get("type") == "RATE_LIMITED" for e in errors):
            raise gh.RateLimited("GitHub's GraphQL rate limit", _reset(data.get("rateLimit")) or time.time() + 60)
        repo = data.get("repository") or {}
        pulls: dict[str, Pull | None] = {}
        for i, w in enumerate(wants):
            node = repo.get(f"t{i}")
            if isinstance(node, dict) and "nodes" in node:
                node = (node.get("nodes") or [None])[0]
            pulls[w.task] = parse_pull(node) if isinstance(node, dict) else None
        limit = data.get("rateLimit") or {}
        budget = Budget(int(limit.get("remaining", -1)), int(limit.get("limit", -1)), _reset(limit))
        seen = gh.budget(answer)
        if budget.remaining < 0 and seen is not None:
            budget = Budget(*seen)
        return pulls, budget

    def job_log(self, check: Check) -> str:
        if not check.job_id:
            return ""
        answer = gh.api(f"repos/{self.owner}/{self.name}/actions/jobs/{check.job_id}/logs", self.host)
        if answer.status >= 400:
            raise gh.GhError(f"the log of {check.name} could not be read ({answer.status}): {answer.message()}")
        return answer.body.decode("utf-8", "replace")

    def auto_merge(self, pull: Pull, method: str) -> None:
        answer = gh.api("graphql", self.host, "POST", {"query": AUTO_MERGE, "variables": {
            "id": pull.node_id, "method": method.upper()}})
        found = answer.json()
        errors = found.get("errors") if isinstance(found, dict) else None
        if answer.status >= 400 or errors:
            why = (errors[0].get("message") if errors and isinstance(errors[0], dict) else "") or answer.message()
            raise gh.GhError(f"GitHub did not take pull request #{pull.number} for auto-merge: {why}")

    def open_pull(self, branch: str, base: str, title: str, body: str, draft: bool) -> Opened:
        answer = gh.api(f"repos/{self.owner}/{self.name}/pulls", self.host, "POST",
                        {"title": title, "head": branch, "base": base, "body": body, "draft": draft})
        found = answer.json()
        if answer.status >= 400 or not isinstance(found, dict):
            raise gh.GhError(f"GitHub did not open the pull request of {branch} ({answer.status}): "
                             f"{answer.message()}")
        return Opened(int(found.get("number") or 0), str(found.get("html_url") or ""))


AUTO_MERGE = """mutation($id: ID!, $method: PullRequestMergeMethod!) {
  enablePullRequestAutoMerge(input: {pullRequestId: $id, mergeMethod: $method}) {
    pullRequest { number autoMergeRequest { enabledAt } } } }"""


def _reset(limit: object) -> float:
    if not isinstance(limit, dict) or not limit.get("resetAt"):
        return 0.0
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(limit["resetAt"]).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _nodes(value: object) -> list[dict]:
    nodes = value.get("nodes") if isinstance(value, dict) else None
    return [n for n in nodes or [] if isinstance(n, dict)]


def _author(node: dict) -> tuple[str, bool]:
    author = node.get("author") or {}
    return str(author.get("login") or "ghost"), author.get("__typename") == "Bot"


def _comment(node: dict) -> Comment:
    who, bot = _author(node)
    return Comment(str(node.get("id", "")), who, bot, str(node.get("body") or ""), str(node.get("url") or ""),
                   str(node.get("createdAt") or ""))


def parse_pull(node: dict) -> Pull:
    """A PR from the query's answer."""
    commits = _nodes(node.get("commits"))
    commit = (commits[-1].get("commit") or {}) if commits else {}
    sha = str(commit.get("oid") or node.get("headRefOid") or "")
    checks = []
    for c in _nodes((commit.get("statusCheckRollup") or {}).get("contexts")):
        if c.get("__typename") == "StatusContext":
            state = str(c.get("state") or "").lower()
            checks.append(Check(str(c.get("context", "")), sha, "pending" if state in ("pending", "expected")
                                else "completed", "" if state in ("pending", "expected") else state,
                                str(c.get("targetUrl") or "")))
        else:
            checks.append(Check(str(c.get("name", "")), sha, str(c.get("status") or "").lower(),
                                str(c.get("conclusion") or "").lower(), str(c.get("detailsUrl") or ""),
                                int(c.get("databaseId") or 0)))
    threads = [Thread(str(t.get("id", "")), str(t.get("path") or ""), t.get("line"), bool(t.get("isResolved")),
                      bool(t.get("isOutdated")), [_comment(c) for c in _nodes(t.get("comments"))])
               for t in _nodes(node.get("reviewThreads"))]
    reviews = []
    for r in _nodes(node.get("reviews")):
        who, bot = _author(r)
        reviews.append(PullReview(str(r.get("id", "")), who, bot, str(r.get("state") or ""),
                                  str((r.get("commit") or {}).get("oid") or ""), str(r.get("body") or ""),
                                  str(r.get("url") or ""), str(r.get("submittedAt") or "")))
    return Pull(
        number=int(node.get("number") or 0), url=str(node.get("url") or ""), state=str(node.get("state") or ""),
        head_ref=str(node.get("headRefName") or ""), head_sha=sha, base_ref=str(node.get("baseRefName") or ""),
        draft=bool(node.get("isDraft")), mergeable=str(node.get("mergeable") or ""),
        merge_state=str(node.get("mergeStateStatus") or ""), review_decision=str(node.get("reviewDecision") or ""),
        checks=checks, threads=threads, reviews=reviews, comments=[_comment(c) for c in _nodes(node.get("comments"))],
        node_id=str(node.get("id") or ""), auto_merge=bool(node.get("autoMergeRequest")),
    )
