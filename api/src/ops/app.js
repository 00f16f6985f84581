// The operators' console. Signs in by exchanging an operator token for a session cookie
// (POST /ops/session); keeps no token and reads none from the URL. Every call goes to
// /ops/graphql with the session's CSRF token; queue counts arrive live over /ops/ws (the
// queueStats subscription, once a second), with polling while the socket is down.
"use strict";
const STATES = ["pending", "scheduled", "running", "done", "failed", "dead"];
const PAGE = 25;
let csrf = null;
let list = null;      // what the jobs screen shows: {queue, state, after: [cursors]} or {filter}
let detail = null;    // {queue, id} of the job shown in full
let socket = null;
let lastStats = 0;    // when the socket last pushed counts
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
  $("sign-in").hidden = true; $("oidc").hidden = true; $("sign-out").hidden = false; $("console").hidden = false;
  connect();
  refresh();
}

let oidc = false;     // the console signs in through an OpenID Connect provider

function signedOut() {
  csrf = null;
  if (socket) { socket.close(); socket = null; }
  $("who").textContent = ""; $("live").textContent = "";
  $("sign-in").hidden = oidc; $("oidc").hidden = !oidc;
  $("sign-out").hidden = true; $("console").hidden = true;
}

function screen(name) {
  for (const s of ["overview", "jobs-screen", "detail"]) $(s).hidden = s !== name;
}

function cell(row, text, cls) {
  const td = row.insertCell(); td.textContent = text == null ? "" : text; if (cls) td.className = cls; return td;
}

function button(parent, label, cls, action) {
  const b = document.createElement("button"); b.textContent = label; b.className = cls;
  b.addEventListener("click", async () => { try { await action(); showError(null); await refresh(); } catch (e) { showError(e); } });
  parent.appendChild(b); return b;
}

// A button that asks once more, saying what will happen, before it acts.
function confirmed(parent, label, cls, question, action) {
  const b = document.createElement("button"); b.textContent = label; b.className = cls;
  b.addEventListener("click", () => {
    const sure = document.createElement("button"); sure.className = "confirm " + cls;
    sure.textContent = question + " Confirm";
    sure.addEventListener("click", async () => {
      try { await action(); showError(null); sure.remove(); await refresh(); } catch (e) { showError(e); }
    });
    parent.appendChild(sure);
  });
  parent.appendChild(b); return b;
}

// ---- overview -------------------------------------------------------------------------------

function showQueues(queues) {
  const body = document.querySelector("#queues tbody"); body.innerHTML = "";
  const select = $("chart-queue");
  for (const q of queues) {
    const row = body.insertRow(); row.dataset.queue = q.name; if (q.paused) row.className = "paused";
    cell(row, q.name);
    for (const s of STATES) {
      const td = cell(row, q[s], "n"); td.dataset.state = s;
      td.addEventListener("click", () => { list = {queue: q.name, state: s, after: []}; detail = null; showList().catch(showError); });
    }
    cell(row, q.waitingInPostgres);
    cell(row, q.latencySeconds.toFixed(1)).dataset.latency = "";
    const actions = row.insertCell();
    if (q.paused) button(actions, "Resume", "resume", () => gql("mutation($q: String!) { resumeQueue(queue: $q) { paused } }", {q: q.name}));
    else button(actions, "Pause", "pause", () => gql("mutation($q: String!) { pauseQueue(queue: $q) { paused } }", {q: q.name}));
    if (![...select.options].some(o => o.value === q.name)) select.add(new Option(q.name, q.name));
  }
}

const QUEUE_FIELDS = "name pending scheduled running done failed dead waitingInPostgres paused latencySeconds";

async function refresh() {
  if (!csrf) return;
  try {
    const live = Date.now() - lastStats < 3000;
    const d = await gql(`query($m: Int!) { ${live ? "" : `jobQueues { ${QUEUE_FIELDS} }`}
      dueWork { kind dueNow oldestDueAt next24Hours next7Days }
      workers { host pid queues concurrency startedAt lastHeartbeat }
      queueThroughput(minutes: $m) { queue points { minute processed failed } } }`, {m: 60});
    showError(null);
    if (d.jobQueues) showQueues(d.jobQueues);
    const due = document.querySelector("#due tbody"); due.innerHTML = "";
    for (const w of d.dueWork) {
      const row = due.insertRow(); row.dataset.kind = w.kind;
      cell(row, w.kind); cell(row, w.dueNow); cell(row, w.oldestDueAt || ""); cell(row, w.next24Hours); cell(row, w.next7Days);
    }
    const workers = document.querySelector("#workers tbody"); workers.innerHTML = "";
    for (const w of d.workers) {
      const row = workers.insertRow();
      cell(row, w.host); cell(row, w.pid); cell(row, w.queues.join(", ")); cell(row, w.concurrency); cell(row, w.startedAt); cell(row, w.lastHeartbeat);
    }
    drawChart(d.queueThroughput);
    // A confirmation waiting for its click is not swept away by a refresh.
    if (document.querySelector("button.confirm")) return;
    if (detail) await showDetail();
    else if (list && !$("jobs-screen").hidden) await showList();
  } catch (e) { showError(e); }
}

// Processed (green) and failed (red) jobs per minute over the last hour, for one queue or all.
function drawChart(throughput) {
  const canvas = $("chart"), g = canvas.getContext("2d");
  const chosen = $("chart-queue").value;
  const series = throughput.filter(t => !chosen || t.queue === chosen);
  const n = series.length ? series[0].points.length : 0;
  const processed = new Array(n).fill(0), failed = new Array(n).fill(0);
  for (const t of series) t.points.forEach((p, i) => { processed[i] += p.processed; failed[i] += p.failed; });
  const max = Math.max(1, ...processed, ...failed);
  const W = canvas.width, H = canvas.height, left = 50, bottom = 20, top = 10;
  g.clearRect(0, 0, W, H);
  g.strokeStyle = "#ccc"; g.fillStyle = "#555"; g.font = "11px system-ui";
  g.strokeRect(left, top, W - left - 5, H - top - bottom);
  g.fillText(String(max), 5, top + 10); g.fillText("0", 5, H - bottom);
  g.fillText("-60 min", left, H - 5); g.fillText("now", W - 30, H - 5);
  const x = i => left + (W - left - 5) * (n <= 1 ? 1 : i / (n - 1));
  const y = v => H - bottom - (H - top - bottom) * v / max;
  for (const [values, color] of [[processed, "#2a8a2a"], [failed, "#c0392b"]]) {
    g.strokeStyle = color; g.lineWidth = 2; g.beginPath();
    values.forEach((v, i) => i ? g.lineTo(x(i), y(v)) : g.moveTo(x(i), y(v)));
    g.stroke();
  }
  canvas.dataset.points = String(processed.filter(v => v > 0).length);
  canvas.dataset.processed = String(processed.reduce((a, b) => a + b, 0));
  canvas.dataset.failed = String(failed.reduce((a, b) => a + b, 0));
}

// ---- live counts over the console's WebSocket --------------------------------------------------

function connect() {
  if (socket || !csrf) return;
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ops/ws", "graphql-transport-ws");
  socket = ws;
  ws.onopen = () => ws.send(JSON.stringify({type: "connection_init", payload: {csrfToken: csrf}}));
  ws.onmessage = m => {
    const msg = JSON.parse(m.data);
    if (msg.type === "connection_ack") {
      ws.send(JSON.stringify({id: "stats", type: "subscribe", payload: {query: `subscription { queueStats { ${QUEUE_FIELDS} } }`}}));
      $("live").textContent = "live";
    } else if (msg.type === "next" && msg.payload.data) {
      lastStats = Date.now();
      showQueues(msg.payload.data.queueStats);
    } else if (msg.type === "ping") {
      ws.send(JSON.stringify({type: "pong"}));
    }
  };
  ws.onclose = () => {
    if (socket === ws) socket = null;
    $("live").textContent = csrf ? "polling" : "";
    if (csrf) setTimeout(connect, 5000);
  };
}

// ---- jobs: lists, search, paging -----------------------------------------------------------

const JOB_FIELDS = "id queue state attempts lastError payload";

async function showList() {
  let jobs, total = null, hasNext = false;
  if (list.filter) {
    const [by, value] = list.filter;
    $("jobs-title").textContent = `Jobs of ${by} ${value}`;
    const d = await gql(`query($f: JobFilter!) { findJobs(filter: $f) { ${JOB_FIELDS} } }`, {f: {[by]: value}});
    jobs = d.findJobs; total = jobs.length;
  } else {
    $("jobs-title").textContent = list.queue + " · " + list.state;
    const after = list.after.length ? list.after[list.after.length - 1] : null;
    const d = await gql(`query($q: String!, $s: JobState!, $first: Int!, $after: String) {
      jobs(queue: $q, state: $s, first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } nodes { ${JOB_FIELDS} } } }`,
      {q: list.queue, s: list.state.toUpperCase(), first: PAGE, after});
    jobs = d.jobs.nodes; total = d.jobs.totalCount; hasNext = d.jobs.pageInfo.hasNextPage;
    list.next = d.jobs.pageInfo.endCursor;
  }
  screen("jobs-screen");
  const from = list.filter ? 0 : list.after.length * PAGE;
  $("jobs-total").textContent = jobs.length ? `${from + 1}–${from + jobs.length} of ${total}` : `none of ${total}`;
  $("prev").disabled = !!list.filter || list.after.length === 0;
  $("next").disabled = !!list.filter || !hasNext;
  const bulk = $("bulk"); bulk.innerHTML = "";
  if (!list.filter && list.state === "dead" && total > 0) {
    const q = list.queue;
    confirmed(bulk, "Retry all dead", "retry-all", `Retry all ${total} dead ${q} job(s)?`,
      async () => { const r = await gql("mutation($q: String!) { n: retryDeadJobs(queue: $q) }", {q}); bulk.textContent = `${r.n} job(s) retried.`; });
    confirmed(bulk, "Discard all dead", "discard-all", `Discard all ${total} dead ${q} job(s) for good?`,
      async () => { const r = await gql("mutation($q: String!) { n: discardDeadJobs(queue: $q) }", {q}); bulk.textContent = `${r.n} job(s) discarded.`; });
  }
  const body = document.querySelector("#jobs tbody"); body.innerHTML = "";
  for (const j of jobs) {
    const row = body.insertRow(); row.dataset.job = j.id; row.dataset.queue = j.queue;
    const id = cell(row, j.id, "link"); id.addEventListener("click", () => { detail = {queue: j.queue, id: j.id}; showDetail().catch(showError); });
    cell(row, j.queue); cell(row, j.state); cell(row, j.attempts); cell(row, j.lastError || "");
    const pre = document.createElement("pre"); pre.textContent = j.payload; row.insertCell().appendChild(pre);
    const actions = row.insertCell();
    // Retry and Discard only where they do something: dead and failed jobs.
    if (j.state === "DEAD" || j.state === "FAILED") {
      button(actions, "Retry", "retry", () => gql("mutation($q: String!, $id: String!) { retryJob(queue: $q, id: $id) }", {q: j.queue, id: j.id}));
      confirmed(actions, "Discard", "discard", "Remove this job from Redis for good?",
        () => gql("mutation($q: String!, $id: String!) { discardJob(queue: $q, id: $id) }", {q: j.queue, id: j.id}));
    }
  }
}

// ---- one job in full -----------------------------------------------------------------------

async function showDetail() {
  const d = await gql(`query($q: String!, $id: String!) { job(queue: $q, id: $id) {
      job { id queue state attempts lastError at } payload
      attempts { attempt atMs outcome error durationMs worker }
      subjects { kind id status attempts lastError dueAt doneAt recipient emailSubject partnerId mpnId partnerName subscriptionId orderId benefitId apiQuery }
      retryWould discardWould } }`, {q: detail.queue, id: detail.id});
  screen("detail");
  const j = d.job;
  if (!j) { $("detail-title").textContent = `Job ${detail.id} is no longer in Redis`; return; }
  $("detail-title").textContent = `${j.job.queue} job ${j.job.id} · ${j.job.state}`;
  $("detail").dataset.state = j.job.state;
  let payload = j.payload; try { payload = JSON.stringify(JSON.parse(payload), null, 2); } catch (_) { /* shown as stored */ }
  $("detail-payload").textContent = payload;
  const attempts = document.querySelector("#attempts tbody"); attempts.innerHTML = "";
  for (const a of j.attempts) {
    const row = attempts.insertRow();
    cell(row, a.attempt); cell(row, new Date(a.atMs).toISOString()); cell(row, a.outcome); cell(row, a.error); cell(row, a.durationMs); cell(row, a.worker);
  }
  if (j.job.state === "DONE") {
    const row = attempts.insertRow();
    cell(row, j.job.attempts); cell(row, j.job.at ? new Date(j.job.at * 1000).toISOString() : ""); cell(row, "ok"); cell(row, ""); cell(row, ""); cell(row, "");
  }
  const subjects = document.querySelector("#subjects tbody"); subjects.innerHTML = "";
  for (const s of j.subjects) {
    const row = subjects.insertRow(); row.dataset.kind = s.kind;
    cell(row, s.kind + (s.recipient ? ` to ${s.recipient}` : ""));
    cell(row, s.status);
    cell(row, s.partnerName ? `${s.partnerName} (${s.mpnId})` : "");
    cell(row, s.subscriptionId || "");
    cell(row, s.attempts); cell(row, s.lastError || "");
    const a = document.createElement("a"); a.textContent = "open"; a.title = s.apiQuery;
    a.href = "/graphql?query=" + encodeURIComponent(s.apiQuery); a.target = "_blank"; a.rel = "noopener";
    const q = document.createElement("code"); q.textContent = s.apiQuery;
    const td = row.insertCell(); td.appendChild(q); td.append(" "); td.appendChild(a);
  }
  $("retry-would").textContent = j.retryWould;
  $("discard-would").textContent = j.discardWould;
  const actions = $("detail-actions"); actions.innerHTML = "";
  if (j.job.state === "DEAD" || j.job.state === "FAILED") {
    button(actions, "Retry", "retry", () => gql("mutation($q: String!, $id: String!) { retryJob(queue: $q, id: $id) }", {q: detail.queue, id: detail.id}));
    confirmed(actions, "Discard", "discard", "Remove this job from Redis for good?",
      () => gql("mutation($q: String!, $id: String!) { discardJob(queue: $q, id: $id) }", {q: detail.queue, id: detail.id}));
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
  for (const b of document.querySelectorAll("nav button")) {
    b.addEventListener("click", () => { detail = null; if (b.dataset.screen === "jobs-screen" && list) showList().catch(showError); else screen(b.dataset.screen); });
  }
  $("find").addEventListener("submit", e => {
    e.preventDefault();
    const value = $("find-value").value.trim();
    if (!value) return;
    list = {filter: [$("find-by").value, value]}; detail = null;
    showList().catch(showError);
  });
  $("prev").addEventListener("click", () => { list.after.pop(); showList().catch(showError); });
  $("next").addEventListener("click", () => { list.after.push(list.next); showList().catch(showError); });
  $("detail-back").addEventListener("click", () => { detail = null; if (list) showList().catch(showError); else screen("overview"); });
  $("chart-queue").addEventListener("change", () => refresh());
  try { oidc = (await (await fetch("/ops/config")).json()).oidc === true; } catch (_) { oidc = false; }
  const r = await fetch("/ops/session", {credentials: "same-origin"});
  if (r.ok) signedIn(await r.json()); else signedOut();
  setInterval(refresh, 2000);
});
