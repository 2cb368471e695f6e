"""The merge-ready dossier: ``.orch/dossiers/<slug>.md`` and ``.json``, the same content in two forms.

It gathers the evidence a person needs to authorise a merge: commits, diffstat, a conflict check against the
current base, the intent and how its requirements were addressed, validation runs, the review history bound to
shas, open findings, residual risks and the dirty state. It never merges.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

from orch import git
from orch.files import atomic_write
from orch.store import Reaction, Review
from orch.verdicts import SEVERITIES, count, format_finding
from orch.workflow import spawn
from orch.workflow import tasks as T
from orch.workflow.context import Ctx
from orch.workflow.intent import parse as parse_intent

TYPE_CHECKING = False
if TYPE_CHECKING:
    from orch import forge as F


def paths(ctx: Ctx, slug: str) -> tuple[str, str]:
    folder = ctx.ws.path("dossiers")
    return os.path.join(folder, f"{slug}.md"), os.path.join(folder, f"{slug}.json")


def _coder_reports(ctx: Ctx, task: T.Task) -> list[str]:
    marker = "coder: done: "
    return [line.text.split(marker, 1)[1] for line in ctx.store.task_log(task.slug) if marker in line.text]


def build(ctx: Ctx, task: T.Task, approval: Review) -> dict:
    slug = task.slug
    root = ctx.ws.root
    worktree = task.meta.get("worktree") or os.path.join(ctx.cfg.worktree_path, slug)
    branch = task.meta.get("branch") or ctx.cfg.branch_prefix + slug
    base = spawn.resolve_base(ctx, task)
    base_head = git.rev(root, base) or ""
    sha = approval.sha
    commits = git.commits_ahead(root, approval.base_sha, sha)
    clean, conflict_paths = git.conflicts(root, base, sha)
    dirty = git.status_porcelain(worktree) if os.path.isdir(worktree) else []
    branch_head = git.rev(root, branch) or ""
    intent = parse_intent(task.body)
    validations = ctx.store.validations(slug, sha=sha)
    reviews = ctx.store.reviews(slug)
    reports = _coder_reports(ctx, task)
    approving = list(approval.findings)

    history = [
        {
            "round": r.round,
            "sha": r.sha,
            "decision": r.decision or "(none)",
            "status": r.status,
            "counted": r.status == "counted",
            "findings": count(r.findings),
            "note": r.note,
        }
        for r in reviews
        if r.decision or r.status not in ("pending",)
    ]
    fixed = []
    for r in reviews:
        if r.id != approval.id and r.status == "counted" and r.decision == "request-changes":
            fixed += [format_finding(f) for f in r.findings if f["severity"] == "blocker"]

    summary_of_work = reports[-1] if reports else "(the coder gave no done report)"
    reviewer_view = "approved with no findings" if not approving else (
        "approved; findings: " + "; ".join(format_finding(f) for f in approving)
    )

    def addressed(items: list[str]) -> list[dict]:
        return [{"item": item, "coder_report": summary_of_work, "reviewer": reviewer_view} for item in items]

    risks = []
    if not validations:
        risks.append("no validation configured: this branch was NOT validated by any command")
    if not clean:
        risks.append(f"merging into {base} conflicts in: {', '.join(conflict_paths)}")
    if base_head and approval.base_sha and base_head != approval.base_sha:
        ahead = len(git.commits_ahead(root, approval.base_sha, base_head))
        risks.append(f"{base} has moved on by {ahead} commit(s) since the branch started; validation ran on the old base")
    left = [f for f in approving if f["severity"] in ("major", "minor")]
    if left:
        risks.append(f"{len(left)} major/minor finding(s) left open by the approving review")
    if dirty:
        risks.append(f"the worktree has {len(dirty)} uncommitted change(s) not in the branch")
    if branch_head and branch_head != sha:
        risks.append(f"the branch moved after the approval ({branch_head[:12]} != approved {sha[:12]})")
    if any(r.status == "invalidated" for r in reviews):
        risks.append("an earlier review was discarded because the worktree changed during it")

    return {
        "version": 1,
        "task": slug,
        "task_file": task.path,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "state": "ready",
        "branch": branch,
        "sha": sha,
        "base": base,
        "base_sha": approval.base_sha,
        "base_head": base_head,
        "worktree": worktree,
        "commits": [{"sha": c[0], "subject": c[1]} for c in commits],
        "diffstat": git.diffstat(root, approval.base_sha, sha),
        "conflicts": {"clean": clean, "paths": conflict_paths, "against": f"{base} ({base_head[:12]})"},
        "intent": intent.text.strip(),
        "requirements": addressed(intent.requirements),
        "invariants": addressed(intent.invariants),
        "non_goals": intent.non_goals,
        "coder_reports": reports,
        "validation": {
            "configured": bool(validations),
            "passed": bool(validations) and all(v.passed for v in validations),
            "runs": [
                {
                    "command": v.command,
                    "source": v.source,
                    "exit_code": v.exit_code,
                    "duration_s": v.duration,
                    "timed_out": bool(v.timed_out),
                    "log": v.log_path,
                }
                for v in validations
            ],
        },
        "reviews": history,
        "approval": {"round": approval.round, "sha": sha, "reviewer": approval.reviewer},
        "blockers_fixed": fixed,
        "findings_open": [format_finding(f) for f in approving],
        "residual_risks": risks,
        "dirty": dirty,
        "decision_needed": (
            f"merge authorisation: merge {branch} ({sha[:12]}) into {base}? orch has not merged anything. "
            f"To merge: git switch {base} && git merge --no-ff {branch}; then `orch close {slug}`."
        ),
    }


def render(d: dict) -> str:
    def bullets(items: list[str], empty: str) -> str:
        return "\n".join(f"- {i}" for i in items) if items else f"- {empty}"

    lines = [
        f"# Merge-ready dossier: {d['task']}",
        "",
        f"**Decision needed: {d['decision_needed']}**",
        "",
        "| | |",
        "| --- | --- |",
        f"| task | `{d['task']}` ({d['task_file']}) |",
        f"| branch | `{d['branch']}` at `{d['sha']}` |",
        f"| base | `{d['base']}` (branch started at `{d['base_sha']}`, now at `{d['base_head']}`) |",
        f"| worktree | {d['worktree']} |",
        f"| approved | round {d['approval']['round']}, sha `{d['sha']}` |",
        f"| generated | {d['generated_at']} |",
        "",
        f"## Commits ({len(d['commits'])})",
        bullets([f"`{c['sha'][:12]}` {c['subject']}" for c in d["commits"]], "(none)"),
        "",
        "## Diffstat",
        "```",
        d["diffstat"] or "(empty)",
        "```",
        "",
        "## Conflict check against the current base",
        (f"Merges cleanly into {d['conflicts']['against']}." if d["conflicts"]["clean"]
         else f"CONFLICTS with {d['conflicts']['against']} in: " + ", ".join(f"`{p}`" for p in d["conflicts"]["paths"])),
        "",
        "## Intent (the task as the person wrote it)",
        "",
        "\n".join(("> " + line).rstrip() for line in d["intent"].splitlines()),
        "",
        "## How the requirements and invariants were addressed",
    ]
    for title, key in (("Requirements", "requirements"), ("Invariants", "invariants")):
        lines.append(f"### {title}")
        if not d[key]:
            lines.append(f"- (the task lists no {title.lower()})")
        for item in d[key]:
            lines.append(f"- {item['item']}")
            lines.append(f"  - coder's report: {item['coder_report']}")
            lines.append(f"  - reviewer: {item['reviewer']}")
    lines += ["", "## Validation evidence"]
    if not d["validation"]["configured"]:
        lines.append("No validation configured: this branch was **not validated**.")
    else:
        lines += ["| command | exit | duration | result | log |", "| --- | --- | --- | --- | --- |"]
        for v in d["validation"]["runs"]:
            result = "timed out" if v["timed_out"] else ("passed" if v["exit_code"] == 0 else "FAILED")
            lines.append(f"| `{v['command']}` | {v['exit_code']} | {v['duration_s']:.2f}s | {result} | {v['log']} |")
    lines += ["", "## Review history (branch-local verdicts, bound to the sha reviewed)",
              "| round | sha | verdict | " + " | ".join(SEVERITIES) + " | counted |",
              "| --- | --- | --- | " + " | ".join("---" for _ in SEVERITIES) + " | --- |"]
    for r in d["reviews"]:
        counts = " | ".join(str(r["findings"][s]) for s in SEVERITIES)
        counted = "yes" if r["counted"] else f"no ({r['status']}{': ' + r['note'] if r['note'] else ''})"
        lines.append(f"| {r['round']} | `{r['sha'][:12]}` | {r['decision']} | {counts} | {counted} |")
    lines += [
        "",
        "## Blockers fixed",
        bullets(d["blockers_fixed"], "(no blockers were raised)"),
        "",
        "## Findings left open",
        bullets(d["findings_open"], "(none)"),
        "",
        "## Coder's reports",
        bullets(d["coder_reports"], "(none)"),
        "",
        "## Residual risks",
        bullets(d["residual_risks"], "none identified"),
        "",
        "## Dirty state",
        bullets(d["dirty"], "the worktree is clean"),
    ]
    if d.get("pull_request"):
        lines += render_pull(d["pull_request"], d["sha"])
    if d.get("landed"):
        lines += render_landed(d["landed"])
    return "\n".join([*lines, ""])


def approved_sha(ctx: Ctx, slug: str) -> str | None:
    """The sha the task's dossier speaks of, or None."""
    try:
        with open(paths(ctx, slug)[1], encoding="utf-8") as fh:
            sha = json.load(fh).get("sha")
    except (OSError, ValueError, AttributeError):
        return None
    return sha if isinstance(sha, str) and sha else None


def set_aside(ctx: Ctx, slug: str, sha: str) -> str:
    """A dossier that no longer speaks of the branch head is kept as ``<slug>-<sha>.superseded.md/.json``."""
    moved = ""
    for path in paths(ctx, slug):
        stem, ext = os.path.splitext(path)
        target = f"{stem}-{sha[:12]}.superseded{ext}"
        try:
            os.replace(path, target)
        except FileNotFoundError:
            continue
        moved = moved or target
    return moved or "(none)"


def write(ctx: Ctx, task: T.Task, approval: Review) -> str:
    data = build(ctx, task, approval)
    md_path, json_path = paths(ctx, task.slug)
    os.makedirs(os.path.dirname(md_path), exist_ok=True)
    atomic_write(json_path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"), mode=0o644)
    atomic_write(md_path, render(data).encode("utf-8"), mode=0o644)
    ctx.event("dossier", f"written: {md_path}", task=task.slug)
    return md_path


def add_section(ctx: Ctx, slug: str, key: str, section: Callable[[dict], dict]) -> bool:
    """One section of the dossier (``section(data)`` makes it from the dossier's data) written into both forms;
    the rest is left as it is. False when the task has no dossier."""
    md_path, json_path = paths(ctx, slug)
    try:
        with open(json_path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return False
    data[key] = section(data)
    atomic_write(json_path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"), mode=0o644)
    atomic_write(md_path, render(data).encode("utf-8"), mode=0o644)
    return True


def add_pull_request(ctx: Ctx, slug: str, pull: F.Pull, reactions: list[Reaction]) -> None:
    """The dossier's pull-request section, written again from the PR as last read."""
    add_section(ctx, slug, "pull_request", lambda data: {
        "number": pull.number, "url": pull.url, "state": pull.state, "head_sha": pull.head_sha,
        "draft": pull.draft, "mergeable": pull.mergeable, "merge_state": pull.merge_state,
        "review_decision": pull.review_decision, "same_sha": pull.head_sha == data.get("sha"),
        "checks": [{"name": c.name, "conclusion": c.word, "sha": c.sha, "url": c.url} for c in pull.checks],
        "threads": [{"path": t.path, "line": t.line, "open": t.open, "resolved": t.resolved, "outdated": t.outdated,
                     "url": t.comments[0].url if t.comments else "", "by": t.comments[0].author if t.comments else ""}
                    for t in pull.threads],
        "approvals": [{"by": r.author, "sha": r.sha, "url": r.url} for r in pull.approvals()],
        "changes_requested": [{"by": r.author, "sha": r.sha, "url": r.url} for r in pull.change_requests()],
        "reactions": [{"at": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.at)), "kind": r.kind,
                       "sha": r.sha, "round": r.round, "what": r.text.split("\n")[0]} for r in reactions],
    })


def render_landed(d: dict) -> list[str]:
    """The dossier's section of the train that landed the branch."""
    lines = ["", f"## Landed by train {d['train']}",
             f"`{d['base']}` moved from `{d['base_before'][:12]}` to the integration commit `{d['integration_sha'][:12]}`"
             f" (validated there; members in order: {', '.join(d['members'])})", ""]
    if d["validation"]:
        lines += ["| command at the integration commit | exit | duration |", "| --- | --- | --- |"]
        lines += [f"| `{v['command']}` | {v['exit_code']} | {v['duration']:.2f}s |" for v in d["validation"]]
    else:
        lines.append("No validation commands: the integration commit was **not validated**.")
    if d.get("carried"):
        lines += ["", "Rebased onto the base; the review carries over, the patches being the same (range-diff):",
                  "```", d["carried"].rstrip(), "```"]
    return lines


def render_pull(p: dict, sha: str) -> list[str]:
    """The pull-request section of the dossier."""
    lines = ["", f"## Pull request #{p['number']} ({p['state'].lower()}{', draft' if p['draft'] else ''})",
             f"{p['url']}: head `{p['head_sha'][:12]}`"
             + (" (the approved sha)" if p["same_sha"] else f" - NOT the approved `{sha[:12]}`")
             + f"; mergeable: {p['mergeable'].lower() or '?'}; review decision: "
             + (p["review_decision"].lower().replace("_", " ") or "none"), "",
             "| check | conclusion | sha |", "| --- | --- | --- |"]
    lines += [f"| [{c['name']}]({c['url']}) | {c['conclusion']} | `{c['sha'][:12]}` |" for c in p["checks"]]
    if not p["checks"]:
        lines.append("| (no checks) | | |")
    lines.append("")
    threads = p["threads"]
    lines.append(f"Review threads: {sum(1 for t in threads if t['open'])} open, "
                 f"{sum(1 for t in threads if t['resolved'])} resolved, {sum(1 for t in threads if t['outdated'])} "
                 "outdated")
    lines += [f"- {'open' if t['open'] else 'resolved' if t['resolved'] else 'outdated'}: `{t['path']}"
              f"{':' + str(t['line']) if t['line'] else ''}` by @{t['by']} ({t['url']})" for t in threads]
    lines += [f"- approved by @{a['by']} on `{a['sha'][:12]}`" for a in p["approvals"]]
    lines += [f"- changes requested by @{a['by']} on `{a['sha'][:12]}`" for a in p["changes_requested"]]
    lines += ["", "Reactions (each sent once):"]
    lines += [f"- {r['at']} {r['kind']}{' on `' + r['sha'][:12] + '`' if r['sha'] else ''}: "
              f"{'round ' + str(r['round']) if r['round'] else 'noted'} - {r['what']}" for r in p["reactions"]]
    if not p["reactions"]:
        lines.append("- (none)")
    return lines
