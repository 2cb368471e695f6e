"""Many hosts: `orch host` (a machine that runs workers for the cluster) and `orch hosts` (the cluster's hosts)."""

from __future__ import annotations

import json
import os
import sys
import time

from orch.cli.app import context
from orch.cli.render import say
from orch.errors import OrchError


def _say(line: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    sys.stdout.write(f"{stamp} {line}\n")
    sys.stdout.flush()


def host(address: str, name: str | None, remote: str | None, folder: str, labels: str | None, max_workers: int,
         ssh: str | None, namespace: str, cluster: str, beat: float, tls_ca: str | None, tls_cert: str | None,
         tls_key: str | None, tls_server_name: str | None, api_key_env: str) -> int:
    from orch import slug as slugs
    from orch.fleet.engine import Link
    from orch.fleet.host import Options, serve

    name = name or os.uname().nodename.split(".")[0]
    why = slugs.problem(name)
    if why:
        raise OrchError(f"--name {name!r}: {why} (a host's name is a plain name: letters, digits and '-')")
    marks = tuple(x.strip() for x in (labels or "").split(",") if x.strip())
    link = Link(address, namespace, cluster, tls_ca or "", tls_cert or "", tls_key or "", tls_server_name or "",
                os.environ.get(api_key_env, "") if api_key_env else "", identity=f"orch host {name}")
    opts = Options(name=name, link=link, folder=os.path.abspath(os.path.expanduser(folder)), remote=remote or "",
                   labels=marks, max_workers=max_workers, ssh=ssh or "", beat=beat)
    return serve(opts, _say)


def hosts(as_json: bool) -> None:
    from orch.fleet import PROTOCOL
    from orch.workflow import fleet

    ctx = context()
    if not fleet.on(ctx):
        raise OrchError("no cluster: set [cluster] address in .orch/config.toml (README \"Many hosts\")")
    found, claims, now = fleet.hosts(ctx)
    dead_after = ctx.cfg.cluster.heartbeat * 2
    rows: list[dict] = []
    for h in sorted(found, key=lambda h: h.name):
        held = sorted(_task_of(key, ctx.cfg.cluster.name) for key, on in claims.items() if on == h.name)
        rows.append({"name": h.name, "live": h.live(now, dead_after), "labels": list(h.labels),
                     "tasks": held, "max_workers": h.max_workers, "workers": h.running,
                     "last_heartbeat_s": round(max(now - h.seen, 0.0), 1), "ssh": h.ssh, "clone": h.clone,
                     "version": h.version, "protocol": h.protocol, "speaks": h.protocol == PROTOCOL})
    if as_json:
        sys.stdout.write(json.dumps({"hosts": rows}, indent=2) + "\n")
        return
    if not rows:
        say("no host has joined the cluster: start `orch host --address ... --remote ...` on a machine")
        return
    lines = [f"{'HOST':<14} {'STATE':<6} {'TASKS':<7} {'WORKERS':<8} {'BEAT':<9} LABELS"]
    for r in rows:
        places = f"{len(r['tasks'])}/{r['max_workers']}"
        beat = f"{r['last_heartbeat_s']:.0f}s ago"
        lines.append(f"{r['name']:<14} {'live' if r['live'] else 'dead':<6} {places:<7} {r['workers']:<8} {beat:<9} "
                     f"{','.join(r['labels']) or '-'}")
    import orch

    apart = sorted(r["name"] for r in rows if r["live"] and not r["speaks"])
    if apart:  # placement leaves them out: they would not understand the workspace's tasks
        lines.append(f"warning: {', '.join(apart)} run(s) an orch that does not speak this workspace's (orch "
                     f"{orch.__version__}): no task is placed there; upgrade them")
    other = sorted(r["name"] for r in rows if r["live"] and r["speaks"] and r["version"] != orch.__version__)
    if other:  # the workflows run on every poller: a different orch may replay them differently
        lines.append(f"warning: {', '.join(other)} run(s) another orch than this workspace's {orch.__version__}: "
                     "run the same version everywhere")
    say("\n".join(lines))


def _task_of(claim: str, cluster: str) -> str:
    """A claim's task name (a claim is its workflow's id, ``<cluster>.<workspace id>.<task>``)."""
    rest = claim[len(cluster) + 1:] if claim.startswith(cluster + ".") else claim
    return rest.split(".", 1)[1] if "." in rest else rest
