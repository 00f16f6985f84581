// The operators' console. Signs in by exchanging an operator token for a session cookie
// (POST /ops/session); keeps no token and reads none from the URL. Every call goes to
// /ops/graphql with the session's CSRF token.
"use strict";
const STATES = ["pending", "scheduled", "running", "done", "failed", "dead"];
let csrf = null;
let shown = null;
const $ = id => document.getElementById(id);

function showError(e) { $("error").textContent = e ? e.message || String(e) : ""; }

async function gql(query, variables) {
  const r = await fetch("/ops/graphql", {method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf || ""},
    body: JSON.stringify({query, variables})});
  if (r.status === 401) { signedOut(); throw new Error("signed out: sign in again"); }
  const body = await r.json();
  if (body.errors) throw new Error(body.errors.map(e => (e.extensions && e.extensions.code) + ": " + e.message).join("; "));
  return body.data;
}

function signedIn(s) {
  csrf = s.csrfToken;
  $("who").textContent = "Signed in as " + s.operator;
  $("sign-in").hidden = true; $("sign-out").hidden = false; $("console").hidden = false;
  refresh();
}

function signedOut() {
  csrf = null;
  $("who").textContent = "";
  $("sign-in").hidden = false; $("sign-out").hidden = true; $("console").hidden = true;
}

function cell(row, text, cls) {
  const td = row.insertCell(); td.textContent = text == null ? "" : text; if (cls) td.className = cls; return td;
}

function button(parent, label, cls, action) {
  const b = document.createElement("button"); b.textContent = label; b.className = cls;
  b.addEventListener("click", async () => { try { await action(); showError(null); await refresh(); } catch (e) { showError(e); } });
  parent.appendChild(b); return b;
}

async function refresh() {
  if (!csrf) return;
  try {
    const d = await gql(`{ jobQueues { name pending scheduled running done failed dead waitingInPostgres paused latencySeconds }
      dueWork { kind dueNow oldestDueAt next24Hours next7Days }
      workers { host pid concurrency startedAt lastHeartbeat } }`);
    showError(null);
    const body = document.querySelector("#queues tbody"); body.innerHTML = "";
    for (const q of d.jobQueues) {
      const row = body.insertRow(); row.dataset.queue = q.name; if (q.paused) row.className = "paused";
      cell(row, q.name);
      for (const s of STATES) {
        const td = cell(row, q[s], "n"); td.dataset.state = s;
        td.addEventListener("click", () => { shown = [q.name, s]; showJobs().catch(showError); });
      }
      cell(row, q.waitingInPostgres);
      cell(row, q.latencySeconds.toFixed(1)).dataset.latency = "";
      const actions = row.insertCell();
      if (q.paused) button(actions, "Resume", "resume", () => gql("mutation($q: String!) { resumeQueue(queue: $q) { paused } }", {q: q.name}));
      else button(actions, "Pause", "pause", () => gql("mutation($q: String!) { pauseQueue(queue: $q) { paused } }", {q: q.name}));
    }
    const due = document.querySelector("#due tbody"); due.innerHTML = "";
    for (const w of d.dueWork) {
      const row = due.insertRow(); row.dataset.kind = w.kind;
      cell(row, w.kind); cell(row, w.dueNow); cell(row, w.oldestDueAt || ""); cell(row, w.next24Hours); cell(row, w.next7Days);
    }
    const workers = document.querySelector("#workers tbody"); workers.innerHTML = "";
    for (const w of d.workers) {
      const row = workers.insertRow();
      cell(row, w.host); cell(row, w.pid); cell(row, w.concurrency); cell(row, w.startedAt); cell(row, w.lastHeartbeat);
    }
    if (shown) await showJobs();
  } catch (e) { showError(e); }
}

async function showJobs() {
  const [queue, state] = shown;
  $("jobs-title").textContent = queue + " · " + state;
  const d = await gql("query($q: String!, $s: JobState!) { jobs(queue: $q, state: $s, first: 100) { id state attempts lastError payload } }",
    {q: queue, s: state.toUpperCase()});
  const bulk = $("bulk"); bulk.innerHTML = "";
  if (state === "dead" && d.jobs.length > 0) {
    // Bulk actions say what they will do and ask once more before doing it.
    for (const [label, m, cls] of [["Retry all dead", "retryDeadJobs", "retry-all"], ["Discard all dead", "discardDeadJobs", "discard-all"]]) {
      const b = document.createElement("button"); b.textContent = label; b.className = cls;
      b.addEventListener("click", () => {
        bulk.innerHTML = "";
        const sure = document.createElement("button");
        sure.className = "confirm"; sure.textContent = `${label.split(" ")[0]} ${d.jobs.length} dead ${queue} job(s)? Confirm`;
        sure.addEventListener("click", async () => {
          try { const r = await gql(`mutation($q: String!) { n: ${m}(queue: $q) }`, {q: queue}); bulk.textContent = `${r.n} job(s) done.`; await refresh(); }
          catch (e) { showError(e); }
        });
        bulk.appendChild(sure);
      });
      bulk.appendChild(b);
    }
  }
  const body = document.querySelector("#jobs tbody"); body.innerHTML = "";
  for (const j of d.jobs) {
    const row = body.insertRow(); row.dataset.job = j.id;
    cell(row, j.id); cell(row, j.state); cell(row, j.attempts); cell(row, j.lastError || "");
    const pre = document.createElement("pre"); pre.textContent = j.payload; row.insertCell().appendChild(pre);
    const actions = row.insertCell();
    // Retry and Discard only where they do something: dead and failed jobs.
    if (state === "dead" || state === "failed") {
      button(actions, "Retry", "retry", () => gql("mutation($q: String!, $id: String!) { retryJob(queue: $q, id: $id) }", {q: queue, id: j.id}));
      button(actions, "Discard", "discard", () => gql("mutation($q: String!, $id: String!) { discardJob(queue: $q, id: $id) }", {q: queue, id: j.id}));
    }
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  $("sign-in").addEventListener("submit", async e => {
    e.preventDefault();
    const token = $("token").value.trim();
    $("token").value = "";
    const r = await fetch("/ops/session", {method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify({token})});
    const body = await r.json();
    if (!r.ok) { showError(new Error(body.errors[0].extensions.code + ": " + body.errors[0].message)); return; }
    showError(null);
    signedIn(body);
  });
  $("sign-out").addEventListener("click", async () => {
    await fetch("/ops/session", {method: "DELETE", credentials: "same-origin", headers: {"X-CSRF-Token": csrf || ""}});
    signedOut();
  });
  const r = await fetch("/ops/session", {credentials: "same-origin"});
  if (r.ok) signedIn(await r.json()); else signedOut();
  setInterval(refresh, 2000);
});
