/**
 * The dashboard page served at `GET /`: one self-contained HTML document (inline CSS and JS, no
 * build step, nothing loaded from elsewhere) that renders the events of `GET /v1/events` and
 * reconnects when the stream breaks. Owns the markup, the styles, the browser script and the
 * Content-Security-Policy that allows exactly that script and style (by hash). Must never put data
 * into the DOM as markup (text goes through textContent; links only to http(s) URLs), never
 * fetch anything but its own node's /v1/events, and never contain `${` or backticks in the browser
 * script (it lives in a template literal).
 */
import { createHash } from "node:crypto";

const STYLE = `
:root {
  --bg: #f5f6f8; --card: #fff; --fg: #1d2330; --muted: #667085; --line: #e3e6eb;
  --accent: #2f6fde; --lead: #0b7a4b; --lead-bg: #e6f5ee; --warn: #a15c00; --warn-bg: #fff4e0;
  --bad: #b42318; --bad-bg: #fdecea;
  color-scheme: light dark;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #12151b; --card: #1b2029; --fg: #e6e9ef; --muted: #98a2b3; --line: #2c3340;
    --accent: #6ea0ff; --lead: #4ade9b; --lead-bg: #15362a; --warn: #f5b65b; --warn-bg: #3a2a12;
    --bad: #ff8a80; --bad-bg: #3d1b1b;
  }
}
* { box-sizing: border-box; }
body {
  margin: 0; background: var(--bg); color: var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
}
header {
  display: flex; flex-wrap: wrap; align-items: center; gap: 12px 20px;
  padding: 14px 24px; background: var(--card); border-bottom: 1px solid var(--line);
}
header h1 { margin: 0; font-size: 18px; letter-spacing: .2px; }
header .meta { color: var(--muted); }
header .meta b { color: var(--fg); font-weight: 600; }
.conn { margin-left: auto; padding: 3px 10px; border-radius: 999px; font-weight: 600; font-size: 12px; }
.conn.live { color: var(--lead); background: var(--lead-bg); }
.conn.down { color: var(--warn); background: var(--warn-bg); }
main { max-width: 1180px; margin: 0 auto; padding: 20px 24px 32px; }
.banner { display: none; margin-bottom: 16px; padding: 10px 14px; border-radius: 8px;
  color: var(--warn); background: var(--warn-bg); }
.banner.show { display: block; }
.banner a { color: inherit; margin-left: 6px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 12px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .6px; }
.card .value { font-size: 24px; font-weight: 650; margin-top: 2px; font-variant-numeric: tabular-nums;
  overflow-wrap: anywhere; }
.card .sub { color: var(--muted); font-size: 12px; margin-top: 2px; }
.card.leader .value { color: var(--lead); }
.card.leader.none .value { color: var(--bad); }
section { margin-top: 22px; }
section h2 { font-size: 15px; margin: 0 0 8px; }
section h2 small { font-size: 12px; font-weight: 400; color: var(--muted); margin-left: 6px; }
.panel { background: var(--card); border: 1px solid var(--line); border-radius: 10px; overflow: hidden; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 9px 14px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { color: var(--muted); font-weight: 600; font-size: 12px; text-transform: uppercase; letter-spacing: .5px; }
tbody tr:last-child td { border-bottom: 0; }
td.num, th.num { text-align: right; }
td.url { color: var(--muted); overflow: hidden; text-overflow: ellipsis; max-width: 320px; }
td.url a { color: inherit; }
tr.is-leader { background: var(--lead-bg); }
tr.is-leader td.id { font-weight: 700; }
.tag { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600;
  border: 1px solid var(--line); color: var(--muted); }
.tag.leader { color: var(--lead); border-color: var(--lead); }
.tag.candidate, .tag.preCandidate { color: var(--warn); border-color: var(--warn); }
.tag.self { color: var(--accent); border-color: var(--accent); margin-left: 6px; }
.tag.up { color: var(--lead); border-color: transparent; }
.tag.down { color: var(--bad); border-color: transparent; }
.note { padding: 9px 14px; color: var(--muted); border-top: 1px solid var(--line); font-size: 13px; }
.note a { color: var(--accent); }
ol.events { list-style: none; margin: 0; padding: 0; max-height: 340px; overflow: auto; }
ol.events li { display: flex; gap: 12px; align-items: baseline; padding: 8px 14px;
  border-bottom: 1px solid var(--line); }
ol.events li:last-child { border-bottom: 0; }
ol.events time { color: var(--muted); font-variant-numeric: tabular-nums; min-width: 96px; }
ol.events .kind { min-width: 92px; }
ol.events li.empty { color: var(--muted); }
footer { color: var(--muted); font-size: 12px; margin-top: 18px; }
#partitions-section { display: none; }
#partitions-section.shown { display: block; }
.grid { display: flex; flex-wrap: wrap; gap: 4px; padding: 10px 14px; }
.cell { min-width: 46px; padding: 4px 6px; border-radius: 6px; font-size: 12px; text-align: center;
  border: 1px solid var(--line); font-variant-numeric: tabular-nums; }
.cell b { display: block; font-size: 11px; color: var(--muted); font-weight: 600; }
.cell.none { color: var(--bad); border-color: var(--bad); }
.cell.m0 { background: rgba(46, 160, 67, .18); } .cell.m1 { background: rgba(56, 132, 244, .18); }
.cell.m2 { background: rgba(210, 153, 34, .20); } .cell.m3 { background: rgba(163, 113, 247, .20); }
.cell.m4 { background: rgba(219, 97, 162, .20); } .cell.m5 { background: rgba(57, 197, 187, .20); }
.cell.mine { outline: 2px solid var(--accent); }
`;

const SCRIPT = String.raw`
(function () {
  "use strict";
  var byId = function (id) { return document.getElementById(id); };
  var MAX_EVENTS = 50;
  var state = { status: null, history: [], since: null, source: null, retry: null };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function num(n) {
    return n === null || n === undefined ? "\u2014" : Number(n).toLocaleString("en-US");
  }
  function pad(n, w) { n = String(n); while (n.length < w) n = "0" + n; return n; }
  function clock(ms) {
    var d = new Date(ms);
    return pad(d.getHours(), 2) + ":" + pad(d.getMinutes(), 2) + ":" + pad(d.getSeconds(), 2) +
      "." + pad(d.getMilliseconds(), 3);
  }
  function safeUrl(u) {
    try {
      var x = new URL(String(u));
      return x.protocol === "http:" || x.protocol === "https:" ? x : null;
    } catch (e) { return null; }
  }
  function dashboardLink(url, text) {
    var x = safeUrl(url);
    if (!x) return el("span", "", text);
    var a = el("a", "", text);
    a.href = x.origin + "/";
    return a;
  }
  function setText(id, text) { byId(id).textContent = String(text); }

  function setConnected(ok) {
    var c = byId("conn");
    c.className = "conn " + (ok ? "live" : "down");
    c.textContent = ok ? "\u25CF live" : "\u25CF reconnecting\u2026";
    var b = byId("banner");
    if (ok) { b.className = "banner"; b.replaceChildren(); return; }
    b.className = "banner show";
    b.replaceChildren(el("span", "", "Lost the event stream of this node; reconnecting. Other members:"));
    var s = state.status;
    if (s) s.members.forEach(function (m) { if (!m.self) b.append(dashboardLink(m.url, m.id)); });
  }

  function renderStatus() {
    var s = state.status;
    if (!s) return;
    document.title = "Ballot \u00B7 " + s.self + " \u00B7 " + s.clusterId;
    setText("cluster", s.clusterId);
    setText("self", s.self);
    setText("self-role", s.role);
    var lc = byId("leader-card");
    lc.className = "card leader" + (s.leader ? "" : " none");
    setText("leader", s.leader ? s.leader.id : "none");
    setText("leader-sub", s.leader ? (s.leader.id === s.self ? "this node" : "elected") : "election in progress");
    setText("term", num(s.term));
    setText("commit", num(s.commitIndex));
    setText("applied", num(s.appliedIndex));
    setText("applied-sub", "last log index " + num(s.lastIndex));
    setText("rate", (Math.round(s.commitRate * 10) / 10).toLocaleString("en-US"));

    var isLeader = s.role === "leader";
    var rows = s.members.map(function (m) {
      var tr = el("tr", m.role === "leader" ? "is-leader" : "");
      tr.setAttribute("data-member", m.id);
      tr.setAttribute("data-role", m.role);
      var id = el("td", "id", m.id);
      if (m.self) id.append(el("span", "tag self", "this node"));
      var url = el("td", "url");
      url.append(dashboardLink(m.url, m.url));
      url.title = m.url;
      var role = el("td");
      role.append(el("span", "tag " + m.role, m.role === "leader" ? "\u2605 leader" : m.role));
      var kind = el("td", "", m.voter ? "voter" : "learner");
      var match = el("td", "num", m.self && !isLeader ? num(s.appliedIndex) + " applied" : num(m.matchIndex));
      var lag = el("td", "num", num(m.lagEntries));
      var link = el("td", "", m.link ? null : "\u2014");
      if (m.link) link.append(el("span", "tag " + m.link, m.link));
      tr.append(id, url, role, kind, match, lag, link);
      return tr;
    });
    byId("members").replaceChildren.apply(byId("members"), rows);

    var note = byId("members-note");
    note.replaceChildren();
    if (isLeader) {
      note.append("Match index and lag (entries behind this leader's log) are live from the leader's replication state.");
    } else if (s.leader) {
      note.append("Match index and lag are known only to the leader; this node is a " + s.role + ". See ");
      note.append(dashboardLink(s.leader.url, s.leader.id + "'s dashboard"));
      note.append(" for replication progress.");
    } else {
      note.append("No leader is known right now: replication progress will show on the next leader's dashboard.");
    }
  }

  function renderPartitions() {
    var s = state.status;
    var section = byId("partitions-section");
    if (!s || !s.partitions) { section.className = ""; return; }
    section.className = "shown";
    var ids = s.members.map(function (m) { return m.id; });
    var led = {};
    var cells = s.partitions.map(function (p) {
      var k = p.leader === null ? -1 : ids.indexOf(p.leader);
      var c = el("div", "cell " + (p.leader === null ? "none" : "m" + (k % 6)) + (p.leader === s.self ? " mine" : ""));
      c.setAttribute("data-partition", String(p.id));
      c.setAttribute("data-leader", p.leader === null ? "" : p.leader);
      c.title = "partition " + p.id + ", term " + p.term;
      c.append(el("b", "", String(p.id)), p.leader === null ? "none" : p.leader);
      if (p.leader !== null) led[p.leader] = (led[p.leader] || 0) + 1;
      return c;
    });
    byId("partitions").replaceChildren.apply(byId("partitions"), cells);
    var without = s.partitions.filter(function (p) { return p.leader === null; }).length;
    var parts = ids.map(function (id) { return id + " leads " + (led[id] || 0); });
    if (without > 0) parts.push(without + " without a leader");
    setText("partitions-note", s.partitions.length + " partitions: " + parts.join(", ") + ". The cards above are partition 0's.");
  }

  function renderHistory() {
    var list = byId("events");
    var items = state.history.slice().reverse().map(function (e) {
      var li = el("li");
      li.setAttribute("data-kind", e.kind);
      var t = el("time", "", clock(e.at));
      t.dateTime = new Date(e.at).toISOString();
      var kind = el("span", "kind");
      kind.append(el("span", "tag" + (e.kind === "leader" && e.leader ? " leader" : ""), e.kind));
      li.append(t, kind, el("span", "text", e.text));
      return li;
    });
    if (items.length === 0) items = [el("li", "empty", "No leader or membership change seen yet.")];
    list.replaceChildren.apply(list, items);
    setText("since", state.since ? "seen by this node since " + clock(state.since) : "");
  }

  function addEvent(ev) {
    state.history.push(ev);
    if (state.history.length > MAX_EVENTS) state.history.splice(0, state.history.length - MAX_EVENTS);
    renderHistory();
  }

  function parse(ev) {
    try { return JSON.parse(ev.data); } catch (e) { return null; }
  }

  // The stream is read with fetch, not EventSource, so that a token travels in the Authorization
  // header and never in a URL (URLs end up in proxy logs, browser history and Referer headers).
  // With --auth-tokens, open the page as /#token=...: the fragment never leaves the browser.
  var tokenMatch = /[#&]token=([^&]+)/.exec(location.hash);
  var token = tokenMatch ? decodeURIComponent(tokenMatch[1]) : null;

  function dispatch(type, data) {
    var s = parse({ data: data });
    if (!s) return;
    if (type === "status") {
      if (Array.isArray(s.history)) {
        state.history = s.history.slice(-MAX_EVENTS);
        state.since = s.historySince;
        renderHistory();
      }
      state.status = s;
      setConnected(true);
      setText("updated", "last change " + clock(s.at));
      renderStatus();
      renderPartitions();
    } else if (type === "leader" || type === "membership") {
      addEvent(s);
    }
  }

  function retryLater(ms) {
    setConnected(false);
    if (state.retry === null) state.retry = setTimeout(connect, ms);
  }

  function connect() {
    state.retry = null;
    var ctl = new AbortController();
    state.source = ctl;
    var headers = { Accept: "text/event-stream" };
    if (token) headers.Authorization = "Bearer " + token;
    var retryMs = 2000;
    fetch("/v1/events", { headers: headers, signal: ctl.signal, cache: "no-store" }).then(function (res) {
      var type = res.headers.get("content-type") || "";
      if (!res.ok || type.indexOf("text/event-stream") !== 0 || !res.body) {
        if (res.body) res.body.cancel();
        retryLater(retryMs);
        return;
      }
      setConnected(true);
      var reader = res.body.getReader();
      var decoder = new TextDecoder();
      var buf = "";
      var ev = { type: "message", data: [] };
      function line(l) {
        if (l === "") {
          if (ev.data.length > 0) dispatch(ev.type, ev.data.join("\n"));
          ev = { type: "message", data: [] };
          return;
        }
        if (l.charAt(0) === ":") return;
        var i = l.indexOf(":");
        var field = i < 0 ? l : l.slice(0, i);
        var value = i < 0 ? "" : l.slice(i + 1);
        if (value.charAt(0) === " ") value = value.slice(1);
        if (field === "event") ev.type = value;
        else if (field === "data") ev.data.push(value);
        else if (field === "retry" && /^\d+$/.test(value)) retryMs = Number(value);
      }
      function pump() {
        return reader.read().then(function (r) {
          if (r.done) {
            retryLater(retryMs);
            return;
          }
          buf += decoder.decode(r.value, { stream: true });
          var parts = buf.split(/\r\n|\r|\n/);
          buf = parts.pop();
          for (var k = 0; k < parts.length; k++) line(parts[k]);
          return pump();
        });
      }
      return pump();
    }).catch(function () {
      retryLater(retryMs);
    });
  }

  renderHistory();
  connect();
})();
`;

const BODY = `
<header>
  <h1>Ballot</h1>
  <div class="meta">cluster <b id="cluster">…</b></div>
  <div class="meta">viewing node <b id="self">…</b> (<span id="self-role">…</span>)</div>
  <div id="conn" class="conn down">● connecting…</div>
</header>
<main>
  <div id="banner" class="banner" role="status"></div>
  <div class="cards">
    <div id="leader-card" class="card leader"><div class="label">Leader</div><div class="value" id="leader">…</div><div class="sub" id="leader-sub"></div></div>
    <div class="card"><div class="label">Term</div><div class="value" id="term">…</div></div>
    <div class="card"><div class="label">Commit index</div><div class="value" id="commit">…</div><div class="sub">this node's view</div></div>
    <div class="card"><div class="label">Applied index</div><div class="value" id="applied">…</div><div class="sub" id="applied-sub"></div></div>
    <div class="card"><div class="label">Write rate</div><div class="value" id="rate">…</div><div class="sub">commits/s, last 5 s</div></div>
  </div>
  <section>
    <h2>Members</h2>
    <div class="panel">
      <table>
        <thead><tr><th>Member</th><th>URL</th><th>Role</th><th>Kind</th><th class="num">Match index</th><th class="num">Lag (entries)</th><th>Stream from leader</th></tr></thead>
        <tbody id="members"></tbody>
      </table>
      <div class="note" id="members-note"></div>
    </div>
  </section>
  <section id="partitions-section">
    <h2>Partitions: who leads what</h2>
    <div class="panel"><div class="grid" id="partitions"></div><div class="note" id="partitions-note"></div></div>
  </section>
  <section>
    <h2>Recent leader and membership changes <small class="meta" id="since"></small></h2>
    <div class="panel"><ol class="events" id="events"></ol></div>
  </section>
  <footer>Live from <code>/v1/events</code> · <span id="updated">waiting for the first status</span></footer>
</main>
`;

const sha256 = (text: string): string =>
  `'sha256-${createHash("sha256").update(text, "utf8").digest("base64")}'`;

/** The whole page. */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Ballot dashboard</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>${BODY}<script>${SCRIPT}</script>
</body>
</html>
`;

/** Allows the page's own inline style and script (by hash) and a stream from its own origin only. */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  `script-src ${sha256(SCRIPT)}`,
  `style-src ${sha256(STYLE)}`,
  "connect-src 'self'",
  "img-src data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");
