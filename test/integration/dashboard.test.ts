/**
 * The live dashboard as an operator sees it: a real 3-node cluster, the page of a follower open
 * in headless Chromium (Debian's, driven by playwright-core), the leader SIGKILLed, and the page —
 * without a reload — marking the new leader and listing the change. Plus the plain HTTP contract
 * of `GET /` and `GET /v1/events`, and, on a scripted stand-in node, membership events and the
 * escaping of what the page shows. Needs /usr/bin/chromium (scripts/install-chromium.sh).
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { existsSync } from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { type Browser, chromium, type Page } from "playwright-core";
import { createDashboard } from "../../src/server/dashboard.js";
import { call, ProcCluster, readEvents } from "./procs.js";

const CHROMIUM = "/usr/bin/chromium";

let browser: Browser | undefined;
const pageErrors = new Map<Page, string[]>();

/** A new page in the shared headless Chromium, collecting script and CSP errors. */
async function newPage(): Promise<Page> {
  if (!existsSync(CHROMIUM)) {
    assert.fail(
      `${CHROMIUM} is missing: run scripts/install-chromium.sh (as root) to install Debian's chromium`,
    );
  }
  browser ??= await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  const page = await browser.newPage({ viewport: { width: 1200, height: 820 } });
  const errors: string[] = [];
  pageErrors.set(page, errors);
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  return page;
}

after(async () => {
  await browser?.close();
});

describe("dashboard", () => {
  let cluster: ProcCluster;

  before(async () => {
    cluster = await ProcCluster.start({ electionTimeoutMs: 500 });
  });

  after(async () => {
    await cluster?.stop();
  });

  it("GET / is an HTML page with the node headers; other methods are refused", async () => {
    const id = cluster.ids[0]!;
    const res = await fetch(`${cluster.url(id)}/?unknown=ignored`);
    const html = await res.text();
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
    assert.equal(res.headers.get("x-ballot-node"), id);
    assert.ok(res.headers.get("x-ballot-leader"), "X-Ballot-Leader is set");
    assert.match(res.headers.get("content-security-policy") ?? "", /default-src 'none'/);
    assert.match(html, /<!doctype html>/i);
    assert.doesNotMatch(html, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/, "text only");
    assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+stylesheet|https?:\/\//i, "no external resources");

    const post = await call(`${cluster.url(id)}/`, "POST", {});
    assert.equal(post.status, 405);
    assert.equal(post.body.error.code, "method_not_allowed");
    const head = await fetch(`${cluster.url(id)}/`, { method: "HEAD" });
    assert.equal(head.status, 405);
  });

  it("GET /v1/events is an event stream that starts with a status event", async () => {
    const id = cluster.ids[1]!;
    const head = await fetch(`${cluster.url(id)}/v1/events`, { signal: AbortSignal.timeout(2_000) });
    assert.equal(head.status, 200);
    assert.match(head.headers.get("content-type") ?? "", /^text\/event-stream/);
    assert.equal(head.headers.get("x-ballot-node"), id);
    await head.body?.cancel();

    const { events } = await readEvents(`${cluster.url(id)}/v1/events?x=1`, (e) => e.length >= 1, {
      timeoutMs: 5_000,
    });
    assert.equal(events[0]?.event, "status");
    const s = events[0]!.data;
    assert.equal(s.self, id);
    assert.equal(s.members.length, 3);
    assert.ok(s.leader?.id, "the status names the leader");
    assert.ok(Array.isArray(s.history), "the first status carries the recent history");
    assert.equal(typeof s.commitRate, "number");

    const post = await call(`${cluster.url(id)}/v1/events`, "POST", {});
    assert.equal(post.status, 405);
  });

  it("a follower's page marks the leader, and the new one after the leader is killed", async () => {
    const page = await newPage();

    const leader = await cluster.waitForLeader();
    const follower = cluster.ids.find((id) => id !== leader)!;
    await page.goto(`${cluster.url(follower)}/`);

    // The page shows this leader in its members table and its leader card.
    const shows = (l: string) =>
      (globalThis as any).document
        .querySelector(`#members tr[data-role="leader"]`)
        ?.getAttribute("data-member") === l &&
      (globalThis as any).document.querySelector("#leader")?.textContent === l;
    await page.waitForFunction(shows, leader, { timeout: 5_000 });
    if (process.env.DASHBOARD_SCREENSHOT) await page.screenshot({ path: process.env.DASHBOARD_SCREENSHOT });
    const members = await page.$$eval("#members tr[data-member]", (rows: any[]) =>
      rows.map((r: any) => r.getAttribute("data-member")),
    );
    assert.deepEqual([...members].sort(), [...cluster.ids].sort());
    assert.equal(await page.$$eval(`#members tr[data-role="leader"]`, (r) => r.length), 1);
    assert.equal(await page.textContent("#self"), follower);
    assert.match((await page.textContent("#members-note")) ?? "", /known only to the leader/);

    const killedAt = Date.now();
    await cluster.signal(leader, "SIGKILL");
    const next = await cluster.waitForLeader(10_000, [leader]);
    // Without a reload: the new leader is marked, and the change is listed (seen after the kill).
    await page.waitForFunction(
      ([l, since]) =>
        (globalThis as any).document
          .querySelector(`#members tr[data-role="leader"]`)
          ?.getAttribute("data-member") === l &&
        (globalThis as any).document.querySelector("#leader")?.textContent === l &&
        [...(globalThis as any).document.querySelectorAll(`#events li[data-kind="leader"]`)].some(
          (li: any) =>
            (li.textContent ?? "").includes(`${l} is the leader`) &&
            Date.parse(li.querySelector("time")?.dateTime ?? "") >= since,
        ),
      [next, killedAt] as const,
      { timeout: 10_000 },
    );
    assert.equal(await page.$$eval(`#members tr[data-role="leader"]`, (r) => r.length), 1);
    if (process.env.DASHBOARD_SCREENSHOT)
      await page.screenshot({ path: process.env.DASHBOARD_SCREENSHOT.replace(/\.png$/, "-after.png") });
    assert.deepEqual(pageErrors.get(page), [], "no script or CSP errors on the page");
    await page.close();
  });
});

/** A scripted stand-in for RaftNode: just what the dashboard reads (status, peers, events). */
class FakeNode extends EventEmitter {
  st = {
    clusterId: "test-cluster",
    self: "a",
    role: "follower",
    term: 3,
    leader: null as { id: string; url: string | null } | null,
    commitIndex: 10,
    appliedIndex: 10,
    lastIndex: 10,
    leaseValid: false,
    members: [{ id: "a", url: "http://127.0.0.1:1", voter: true, matchIndex: null, lagEntries: null }] as {
      id: string;
      url: string;
      voter: boolean;
      matchIndex: number | null;
      lagEntries: number | null;
    }[],
  };
  status() {
    return this.st;
  }
  peers() {
    return [];
  }
}

describe("dashboard on a stand-in node", () => {
  const node = new FakeNode();
  const dashboard = createDashboard(node as any);
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    try {
      if (path === "/") dashboard.page(res, req.method ?? "GET");
      else if (path === "/v1/events") {
        streams++;
        streamRequests.push({ url: req.url ?? "", authorization: req.headers.authorization });
        dashboard.events(res, req.method ?? "GET");
      } else res.writeHead(404).end();
    } catch (e) {
      res.writeHead((e as { status?: number }).status ?? 500).end();
    }
  });
  let base = "";
  let streams = 0;
  const streamRequests: { url: string; authorization: string | undefined }[] = [];

  before(async () => {
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(() => {
    node.emit("stopped");
    server.closeAllConnections();
    server.close();
  });

  it("streams leader and membership changes and the write rate", async () => {
    const { events } = await readEvents(
      `${base}/v1/events`,
      (ev) => {
        if (ev.length === 1) {
          node.st = {
            ...node.st,
            leader: { id: "b", url: "http://127.0.0.1:2" },
            commitIndex: 40,
            members: [
              ...node.st.members,
              { id: "b", url: "http://127.0.0.1:2", voter: true, matchIndex: null, lagEntries: null },
            ],
          };
          node.emit("leader", node.st.leader);
        }
        return (
          ev.some((e) => e.event === "leader") &&
          ev.some((e) => e.event === "membership") &&
          ev.some((e) => e.event === "status" && e.data.commitRate > 0)
        );
      },
      { timeoutMs: 5_000 },
    );
    assert.equal(events[0]!.event, "status");
    const leader = events.find((e) => e.event === "leader")!.data;
    assert.equal(leader.leader, "b");
    assert.equal(leader.text, "b is the leader (term 3)");
    const member = events.find((e) => e.event === "membership")!.data;
    assert.equal(member.member, "b");
    assert.equal(member.text, "b joined as a voter");
    const last = events.filter((e) => e.event === "status").at(-1)!.data;
    assert.equal(last.leader.id, "b");
    assert.ok(last.commitRate > 0, "commits since the last sample show as a write rate");

    // A late viewer gets both in the first status's history.
    const late = await readEvents(`${base}/v1/events`, (e) => e.length >= 1, { timeoutMs: 5_000 });
    assert.deepEqual(
      late.events[0]!.data.history.map((h: { kind: string }) => h.kind),
      ["leader", "membership"],
    );
  });

  it("puts data into the page as text, never as markup, and reconnects when the stream breaks", async () => {
    node.st = {
      ...node.st,
      members: [
        ...node.st.members,
        {
          id: "<img src=x id=pwned>",
          url: "javascript:alert(1)",
          voter: false,
          matchIndex: null,
          lagEntries: null,
        },
      ],
    };
    const page = await newPage();
    await page.goto(`${base}/`);
    await page.waitForFunction(
      () => (globalThis as any).document.querySelectorAll("#members tr[data-member]").length === 3,
      undefined,
      { timeout: 5_000 },
    );
    assert.equal(await page.$$eval("#pwned", (e) => e.length), 0);
    assert.equal(await page.$$eval(`a[href^="javascript"]`, (e) => e.length), 0);
    assert.match((await page.textContent("#members")) ?? "", /<img src=x id=pwned>/);
    // The membership event comes with the dashboard's next sample (every 500 ms), which may be
    // after the first status the page showed.
    await page.waitForFunction(
      () => /joined as a learner/.test((globalThis as any).document.querySelector("#events").textContent),
      undefined,
      { timeout: 5_000 },
    );
    assert.deepEqual(pageErrors.get(page), [], "no script or CSP errors on the page");

    // The stream breaks: the page reconnects by itself and goes on updating.
    const before = streams;
    server.closeAllConnections();
    node.st = { ...node.st, term: 7 };
    await page.waitForFunction(
      () => (globalThis as any).document.querySelector("#term").textContent === "7",
      undefined,
      { timeout: 5_000 },
    );
    // (Chromium logs the cut stream as a network error: expected, so not checked after this.)
    assert.ok(streams > before, "the page opened a new stream");
    await page.close();
  });

  it("sends a #token in the Authorization header of its stream, never in the URL", async () => {
    const page = await newPage();
    streamRequests.length = 0;
    await page.goto(`${base}/#token=secret-token-0123456789`);
    await page.waitForFunction(
      () => (globalThis as any).document.querySelectorAll("#members tr[data-member]").length > 0,
      undefined,
      { timeout: 5_000 },
    );
    assert.deepEqual(streamRequests, [
      { url: "/v1/events", authorization: "Bearer secret-token-0123456789" },
    ]);
    assert.deepEqual(pageErrors.get(page), []);
    await page.close();
  });
});
