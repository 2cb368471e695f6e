// orch web: the board and a task's page, kept current by server-sent events (nothing is polled by the page).
"use strict";
const csrf = document.querySelector('meta[name="csrf"]').content;
const main = document.getElementById("main");
const live = document.getElementById("live");
const path = location.pathname;
const slug = path.startsWith("/t/") ? decodeURIComponent(path.slice(3)) : null;
let model = null;
let needing = new Set();
let lastSaid = "";  // what the last action answered (kept across the page's redraws)

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return node;
}

function age(since) {
  if (!since) return "";
  const s = Math.max(0, Math.floor(Date.now() / 1000 - since));
  if (s < 10) return `${s} s`;
  return s < 60 ? `${s - s % 5} s` : s < 7200 ? `${Math.floor(s / 60)} min` : `${Math.floor(s / 3600)} h`;
}

function headline(t) {
  const coder = t.workers.find((w) => w.role === "coder");
  if (coder && ["coding", "fixing", "needs-input"].includes(t.state)) {
    return `${coder.state} - ${coder.state_source || "registry"}, ${age(coder.state_since)}`;
  }
  const detail = t.detail ? ` - ${t.detail}` : "";
  return t.state + detail + (t.state_since ? `, ${age(t.state_since)}` : "");
}

function evidence(t) {
  const e = t.evidence, out = [];
  if (e.validation) out.push(`validation ${e.validation}`);
  if (e.review) out.push(`verdict ${e.review}`);
  if (e.pull_request) out.push(`PR #${e.pull_request.number} ${e.pull_request.state.toLowerCase()}`);
  if (e.conflicts && Object.keys(e.conflicts.with).length) out.push(`conflicts with ${Object.keys(e.conflicts.with).join(", ")}`);
  return out.join(" · ");
}

function board() {
  main.replaceChildren();
  for (const g of model.groups) {
    const tasks = model.tasks.filter((t) => t.group === g.name);
    if (!tasks.length) continue;
    const sec = el("section", { class: `group group-${g.name}`, "data-group": g.name }, el("h2", {}, `${g.title} (${tasks.length})`));
    for (const t of tasks) {
      sec.append(el("div", { class: "card", "data-task": t.slug },
        el("a", { class: "slug", href: `/t/${encodeURIComponent(t.slug)}` }, t.slug),
        el("span", { class: "state", "data-since": "1" }, headline(t)),
        el("span", { class: "dim" }, t.agent || ""),
        el("span", { class: "next" }, t.next || evidence(t) || (t.last_status || "").slice(21))));
    }
    main.append(sec);
  }
  if (!model.tasks.length) main.append(el("p", {}, "No tasks yet: `orch add \"...\"` writes one."));
}

function taskPage() {
  const t = model.tasks.find((x) => x.slug === slug);
  let box = document.getElementById("task");
  if (!box) {
    main.replaceChildren();
    box = el("div", { id: "task" });
    main.append(box, el("h3", {}, "screen"), el("pre", { id: "screen" }, "..."));
    watchScreen();
  }
  box.replaceChildren();
  if (!t) { box.append(el("p", {}, `no open task ${slug}`)); return; }
  const dl = el("dl", {});
  const row = (k, v) => { if (v) dl.append(el("dt", {}, k), el("dd", { "data-key": k }, v)); };
  row("state", t.state); row("now", headline(t)); row("next", t.next); row("question", t.evidence.question);
  row("blocked", t.evidence.blocked); row("evidence", evidence(t)); row("branch", t.branch);
  row("dossier", t.evidence.dossier); row("last status", t.last_status);
  box.append(el("h2", {}, t.slug), dl);
  const said = el("pre", { class: "said" }, lastSaid);
  async function act(action, body) {
    const r = await fetch(`/t/${encodeURIComponent(slug)}/${action}`, { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Orch-CSRF": csrf }, body: JSON.stringify(body || {}) });
    const answer = await r.json();
    lastSaid = answer.ok || answer.error;
    // (the page may have been drawn again while the request was out: the line shown now is the one to update)
    document.querySelectorAll("pre.said").forEach((node) => { node.textContent = lastSaid; });
    return answer;
  }
  const input = el("input", { name: "text", placeholder: t.state === "needs-input" ? "your answer" : "a text for its coder",
                               "aria-label": "text" });
  const form = el("form", { class: "reply" }, input,
                  el("button", { type: "submit" }, t.state === "needs-input" ? "reply" : "send"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    await act(t.state === "needs-input" ? "reply" : "send", { text: input.value });
    input.value = "";
  });
  const buttons = el("div", { class: "actions" });
  const button = (label, fn) => { const b = el("button", { type: "button", "data-action": label }, label); b.addEventListener("click", fn); buttons.append(b); };
  if (["blocked", "ready", "checking"].includes(t.state)) button("retry", () => act("retry"));
  if (t.state === "lost") button("recover", () => act("recover"));
  if (t.state === "ready") button("land", async () => {
    const plan = await act("land", { plan: true });
    if (plan.ok && confirm(`${plan.ok}\n\nLand it?`)) await act("land", {});
  });
  button("close", () => { if (confirm(`Close ${slug}? Its windows end and its worktree goes.`)) act("close", {}); });
  box.append(form, buttons, said);
  box.append(el("h3", {}, "summary"), el("pre", {}, (t.summary || []).join("\n")));
}

// the colours of a terminal screen (SGR sequences) as HTML
const PALETTE = ["#000", "#c33", "#3a3", "#c90", "#36c", "#a3a", "#3aa", "#ccc", "#666", "#f55", "#5d5", "#fd5", "#58f", "#d5d", "#5dd", "#fff"];
function color256(n) {
  if (n < 16) return PALETTE[n];
  if (n < 232) { n -= 16; const c = (x) => [0, 95, 135, 175, 215, 255][x]; return `rgb(${c(Math.floor(n / 36))},${c(Math.floor(n / 6) % 6)},${c(n % 6)})`; }
  const g = 8 + (n - 232) * 10; return `rgb(${g},${g},${g})`;
}
function ansi(text) {
  const out = document.createDocumentFragment();
  let style = {};
  const parts = text.split(/\x1b\[([0-9;]*)m/);
  for (let i = 0; i < parts.length; i++) {
    if (i % 2 === 0) {
      if (!parts[i]) continue;
      const span = el("span", {}, parts[i].replace(/\x1b\[[0-9;?]*[A-Za-z]/g, ""));
      let css = "";
      const fg = style.reverse ? style.bg || "#111" : style.fg, bg = style.reverse ? style.fg || "#ddd" : style.bg;
      if (fg) css += `color:${fg};`; if (bg) css += `background:${bg};`;
      if (style.bold) css += "font-weight:bold;"; if (style.underline) css += "text-decoration:underline;";
      if (css) span.style.cssText = css;
      out.append(span);
      continue;
    }
    const codes = parts[i] === "" ? [0] : parts[i].split(";").map(Number);
    for (let k = 0; k < codes.length; k++) {
      const c = codes[k];
      if (c === 0) style = {};
      else if (c === 1) style.bold = true; else if (c === 4) style.underline = true; else if (c === 7) style.reverse = true;
      else if (c === 22) style.bold = false; else if (c === 24) style.underline = false; else if (c === 27) style.reverse = false;
      else if (c >= 30 && c <= 37) style.fg = PALETTE[c - 30]; else if (c >= 90 && c <= 97) style.fg = PALETTE[c - 82];
      else if (c >= 40 && c <= 47) style.bg = PALETTE[c - 40]; else if (c >= 100 && c <= 107) style.bg = PALETTE[c - 92];
      else if (c === 39) delete style.fg; else if (c === 49) delete style.bg;
      else if ((c === 38 || c === 48) && codes[k + 1] === 5) { style[c === 38 ? "fg" : "bg"] = color256(codes[k + 2]); k += 2; }
      else if ((c === 38 || c === 48) && codes[k + 1] === 2) { style[c === 38 ? "fg" : "bg"] = `rgb(${codes[k + 2]},${codes[k + 3]},${codes[k + 4]})`; k += 4; }
    }
  }
  return out;
}

function watchScreen() {
  const src = new EventSource(`/t/${encodeURIComponent(slug)}/screen`);
  src.addEventListener("screen", (ev) => {
    const pre = document.getElementById("screen");
    pre.replaceChildren(ansi(JSON.parse(ev.data)));
    pre.scrollTop = pre.scrollHeight;
  });
}

function render() {
  if (!model) return;
  if (model.error) { main.replaceChildren(el("p", {}, `orch: ${model.error}`)); return; }
  document.getElementById("where").textContent = slug ? slug : model.workspace;
  slug ? taskPage() : board();
  const now = new Set(model.tasks.filter((t) => ["needs-input", "delivery-failed", "blocked"].includes(t.group)).map((t) => t.slug));
  const fresh = [...now].filter((s) => !needing.has(s));
  needing = now;
  document.title = (now.size ? `(${now.size}) ` : "") + "orch";
  if (fresh.length) live.textContent = `needs you: ${fresh.join(", ")}`;
}

const events = new EventSource("/events");
events.addEventListener("open", () => { live.textContent = "live"; });
events.addEventListener("error", () => { live.textContent = "reconnecting..."; });
events.addEventListener("model", (ev) => { model = JSON.parse(ev.data); render(); });
setInterval(() => {  // ages move on between models (no request: the times are in the model)
  if (!model) return;
  document.querySelectorAll('[data-task] .state').forEach((node) => {
    const t = model.tasks.find((x) => x.slug === node.parentElement.dataset.task);
    if (t) node.textContent = headline(t);
  });
}, 1000);
