/**
 * Peer traffic over the node's one HTTP port: each node opens one long-lived outbound stream per
 * peer with an HTTP Upgrade (`GET /v1/raft`, `Upgrade: ballot-raft/1`) and sends length-prefixed
 * binary frames on it; it receives on the streams its peers opened. Owns connections, the
 * handshake (cluster identity, who talks to whom), framing, bounded queues, reconnect with backoff
 * and jitter, and dead-peer detection. Must never interpret messages beyond validating them.
 *
 * A peer that sends garbage, claims another identity, or belongs to another cluster is
 * disconnected with the reason logged once; the node keeps running.
 *
 * With TLS (`tls` option), peers are dialled over HTTPS only (never an http:// URL), presenting
 * this node's certificate; with a CA, the dialled server's certificate must name the peer's id, and
 * an inbound stream is accepted only from a client certificate the CA vouches for that names the
 * id in X-Ballot-From (see tls.ts).
 */
import * as http from "node:http";
import * as https from "node:https";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Message, NodeId } from "../raft/types.js";
import {
  batchable,
  CodecError,
  decodeGroupMessage,
  decodeHeartbeatBatch,
  encodeFramedMessage,
  encodeHeartbeatBatch,
  isHeartbeatBatch,
} from "./codec.js";
import { FrameReader } from "./frames.js";
import {
  isCertificateError,
  PEER_IDENTITY_ERROR,
  peerCertificateProblem,
  peerClientOptions,
  type TlsMaterial,
} from "./tls.js";
import type { PeerStatus, Transport } from "./transport.js";

export const RAFT_PATH = "/v1/raft";
export const UPGRADE_PROTOCOL = "ballot-raft/1";

export interface TransportLogger {
  info(msg: string): void;
  warn(msg: string): void;
}

export interface HttpTransportOptions {
  readonly self: NodeId;
  readonly clusterId: string;
  readonly peers: ReadonlyMap<NodeId, string>;
  readonly logger?: TransportLogger;
  /** Bytes queued for one peer before new messages to it are dropped. Default 64 MiB. */
  readonly maxQueueBytes?: number;
  /** An inbound stream with no frame for this long is closed as dead. Default 10 s. Outbound streams ping at a third of it. */
  readonly idleTimeoutMs?: number;
  /**
   * An outbound stream with nothing to send for this long sends a ping. Default a third of
   * idleTimeoutMs. A partitioned node pings once per heartbeat interval: its quiet partitions
   * send no heartbeats, and these pings are how its peers know it is alive (see lastHeard).
   */
  readonly pingIntervalMs?: number;
  /**
   * Whether to take a peer stream from `from`: null to accept, else why not (answered `410
   * member_removed`: a member whose removal is committed). Default: accept everyone.
   */
  readonly admit?: (from: NodeId) => string | null;
  /** Leadership priority announced to peers (see RaftNodeOptions.priority). Default 0. */
  readonly priority?: number;
  /** The cluster this node's data was forced out of (--force-new-cluster): its members are told they were removed. */
  readonly formerClusterId?: string;
  /** Called when the peer dialled refuses our stream because our removal from the cluster is committed. */
  readonly onRemoved?: (peer: NodeId) => void;
  /** TLS for peer streams: dial https:// peers with this certificate, check theirs (see tls.ts). Absent: plain HTTP. */
  readonly tls?: TlsMaterial;
  /**
   * Raft groups this node runs (default 1). A message naming a group past them is garbage, and
   * the peer's stream is cut. With several, writes to a peer within one turn of the event loop
   * leave together (as one buffer, written at the turn's end), so every group's messages of a
   * turn share one write.
   */
  readonly groups?: number;
  /**
   * Whether this node sends and reads heartbeat batches (codec.ts) when it runs several groups:
   * every plain heartbeat of a turn for one peer, whatever its group, in one message. Default
   * true; false behaves as a node that predates them (tests of mixed-version clusters).
   */
  readonly heartbeatBatches?: boolean;
}

const PING = new Uint8Array(4); // an empty frame

/** How long a new link's connection failures stay unreported (see PeerLink.report). */
const STARTUP_GRACE_MS = 5000;

class PeerLink {
  socket: Socket | null = null;
  connecting = false;
  private queue: Uint8Array[] = [];
  queuedBytes = 0;
  dropped = 0;
  private attempts = 0;
  private timer: NodeJS.Timeout | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private lastSend = 0;
  private reported: string | null = null;
  /** This turn's frames for the peer when the node runs several groups (see send). */
  private turn: Uint8Array[] | null = null;
  /** The peer said (on its answer to this stream) that it reads heartbeat batches. */
  batches = false;
  /** This turn's heartbeats for the peer, of any group, waiting to leave as one batch. */
  private beats: { group: number; message: Message }[] = [];
  /** The groups with a heartbeat in `beats`: their next other message must not overtake it. */
  readonly beatGroups = new Set<number>();
  /** Since when this link has tried to connect without ever succeeding (null once it has). */
  private neverConnectedSince: number | null = Date.now();
  closed = false;

  constructor(
    readonly id: NodeId,
    public url: string,
    private readonly t: HttpTransport,
  ) {}

  /** Queues a batchable heartbeat (codec.batchable) to leave with the turn's others. */
  queueBeat(group: number, message: Message): void {
    if (this.beats.length === 0) setImmediate(() => this.flushBeats());
    this.beats.push({ group, message });
    this.beatGroups.add(group);
  }

  /** Sends the queued heartbeats: one batch, or one frame each if the stream no longer takes batches. */
  flushBeats(): void {
    if (this.beats.length === 0) return;
    const beats = this.beats;
    this.beats = [];
    this.beatGroups.clear();
    if (this.closed) return;
    if (!this.socket || this.connecting) {
      this.dropped += beats.length; // the next tick's heartbeats go to the new stream
      return;
    }
    if (this.batches) {
      this.t.heartbeatBatchesSent++;
      this.send(encodeHeartbeatBatch(this.t.self, this.id, beats));
    } else {
      this.send(Buffer.concat(beats.map((b) => encodeFramedMessage(b.message, b.group))));
    }
  }

  send(bytes: Uint8Array): void {
    if (this.closed) return;
    const s = this.socket;
    if (s && !this.connecting) {
      if (s.writableLength > this.t.maxQueueBytes) {
        this.dropped++; // the peer is not reading: Raft will resend what matters
        return;
      }
      this.lastSend = Date.now();
      if (this.t.groups > 1) {
        // Several groups send in separate callbacks of one turn: their frames leave as one buffer
        // in one write at the turn's end (cheaper than a corked socket's write per group, whose
        // every chunk the stream tracks and calls back on its own).
        if (this.turn === null) {
          this.turn = [bytes];
          setImmediate(() => this.flushTurn());
        } else this.turn.push(bytes);
        return;
      }
      s.write(bytes);
      return;
    }
    this.queue.push(bytes);
    this.queuedBytes += bytes.byteLength;
    while (this.queuedBytes > this.t.maxQueueBytes && this.queue.length > 1) {
      this.queuedBytes -= this.queue.shift()!.byteLength;
      this.dropped++;
    }
    this.dial();
  }

  /** Writes this turn's frames (see send): lost like any unsent message if the stream went meanwhile. */
  private flushTurn(): void {
    const frames = this.turn;
    this.turn = null;
    if (!frames || this.closed) return;
    const s = this.socket;
    if (!s || this.connecting || s.destroyed) {
      this.dropped += frames.length;
      return;
    }
    s.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames));
  }

  /** Connects unless connected, connecting or waiting to retry. */
  dial(): void {
    if (!this.closed && !this.socket && !this.connecting && !this.timer) this.connect();
  }

  private connect(): void {
    if (this.closed) return;
    this.connecting = true;
    let target: URL;
    try {
      target = new URL(RAFT_PATH, this.url);
    } catch {
      this.report(`peer ${this.id}: bad URL ${this.url}`);
      this.connecting = false;
      return;
    }
    const secure = target.protocol === "https:";
    if (this.t.tls && !secure) {
      this.report(
        `peer ${this.id} (${this.url}): not dialled: this node runs TLS and never sends peer traffic in the clear`,
      );
      this.retry();
      return;
    }
    const options: http.RequestOptions = {
      method: "GET",
      headers: {
        Connection: "Upgrade",
        Upgrade: UPGRADE_PROTOCOL,
        "X-Ballot-Cluster": this.t.clusterId,
        "X-Ballot-From": this.t.self,
        "X-Ballot-To": this.id,
        "X-Ballot-Priority": String(this.t.priority),
      },
      timeout: 5000,
      // A fresh connection each time: its certificate checks were made for this peer's id.
      ...(secure ? { agent: false, ...(this.t.tls ? peerClientOptions(this.t.tls, this.id) : {}) } : {}),
    };
    const req = secure ? https.request(target, options) : http.request(target, options);
    req.on("upgrade", (res, socket: Socket, head: Buffer) => {
      this.connecting = false;
      this.attempts = 0;
      this.batches =
        this.t.readsBatches && headerValue(res.headers["x-ballot-batches"]).split(",").includes("heartbeats");
      if (this.closed) {
        socket.destroy();
        return;
      }
      if (head.length > 0) socket.unshift(head);
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 5000);
      this.socket = socket;
      socket.on("data", () => {}); // peers never write back on our stream; keep it flowing
      socket.on("error", () => {});
      socket.on("close", () => {
        if (this.socket === socket) {
          this.socket = null;
          this.stopPing();
          if (!this.closed) {
            this.report(`peer ${this.id} (${this.url}): stream closed`);
            this.retry();
          }
        }
      });
      this.report(null);
      this.neverConnectedSince = null;
      this.t.logger.info(`peer ${this.id} (${this.url}): connected`);
      const queued = this.queue;
      this.queue = [];
      this.queuedBytes = 0;
      for (const q of queued) socket.write(q);
      this.lastSend = Date.now();
      this.startPing();
    });
    req.on("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        if (body.length < 500) body += d;
      });
      res.on("end", () => {
        this.report(
          `peer ${this.id} (${this.url}) refused the peer stream: ${res.statusCode} ${body.trim().slice(0, 300)}`,
        );
        // Believed only from the member dialled, of this cluster, saying exactly this.
        if (
          res.statusCode === 410 &&
          headerValue(res.headers["x-ballot-node"]) === this.id &&
          headerValue(res.headers["x-ballot-cluster"]) === this.t.clusterId &&
          /"code":"member_removed"/.test(body)
        ) {
          this.t.onRemoved?.(this.id);
        }
        this.retry();
      });
    });
    req.on("timeout", () => req.destroy(new Error("connect timeout")));
    req.on("error", (err) => {
      const code = (err as NodeJS.ErrnoException).code;
      this.report(
        code === PEER_IDENTITY_ERROR
          ? `refused to send to peer ${this.id} (${this.url}): ${err.message}`
          : isCertificateError(code)
            ? `refused to send to peer ${this.id} (${this.url}): its certificate failed the check: ${err.message}`
            : `peer ${this.id} (${this.url}) unreachable: ${err.message}`,
        code !== PEER_IDENTITY_ERROR && !isCertificateError(code),
      );
      this.retry();
    });
    req.end();
  }

  private retry(): void {
    this.connecting = false;
    if (this.closed || this.timer) return;
    // Exponential backoff with jitter, so a cluster restarting together does not reconnect in lockstep.
    const base = Math.min(2000, 50 * 2 ** this.attempts++);
    const delay = base / 2 + Math.random() * (base / 2);
    this.timer = setTimeout(() => {
      this.timer = null;
      // Redialled whether or not anything waits: the first vote after a failover must not wait
      // for a connection to a peer this node had nothing to say to until then.
      if (!this.socket && !this.connecting) this.connect();
    }, delay);
    this.timer.unref();
  }

  private startPing(): void {
    const every = this.t.pingIntervalMs;
    this.pingTimer = setInterval(() => {
      if (this.socket && Date.now() - this.lastSend >= every) {
        this.lastSend = Date.now();
        this.socket.write(PING);
      }
    }, every);
    this.pingTimer.unref();
  }

  private stopPing(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  /** Logs a state change once (not every retry). */
  private report(problem: string | null, unreachable = false): void {
    if (problem === null) {
      this.reported = null;
      return;
    }
    // Peers dialled at start are often not up yet (a cluster starting together): not worth a
    // warning until it lasts; it comes once it has. Refusals and certificate failures always warn.
    if (
      unreachable &&
      this.neverConnectedSince !== null &&
      Date.now() - this.neverConnectedSince < STARTUP_GRACE_MS
    )
      return;
    const key = problem.replace(/\d+ms/g, "");
    if (this.reported === key) return;
    this.reported = key;
    this.t.logger.warn(problem);
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.stopPing();
    this.socket?.destroy();
    this.socket = null;
    this.queue = [];
    this.queuedBytes = 0;
  }
}

/** The HTTP Upgrade peer transport. Mount it on a server with attach() (or call handleUpgrade). */
export class HttpTransport implements Transport {
  readonly self: NodeId;
  readonly clusterId: string;
  readonly logger: TransportLogger;
  readonly maxQueueBytes: number;
  readonly idleTimeoutMs: number;
  readonly pingIntervalMs: number;
  /** When (performance.now()) each peer's stream to this node last brought anything, pings included. */
  private readonly heardAt = new Map<NodeId, number>();
  readonly tls: TlsMaterial | undefined;
  readonly groups: number;
  private links = new Map<NodeId, PeerLink>();
  private inbound = new Map<Duplex, NodeId>();
  private readonly admit: (from: NodeId) => string | null;
  private readonly formerClusterId: string | undefined;
  readonly onRemoved: ((peer: NodeId) => void) | undefined;
  /** This node's leadership priority, announced on every stream it opens. */
  readonly priority: number;
  /** The priority each peer announced on its latest stream to this node. */
  private readonly priorities = new Map<NodeId, number>();
  private onMessage: ((m: Message, group: number) => void) | null = null;
  private closed = false;
  /** Messages refused from peers (bad frames, wrong identity), for metrics. */
  rejected = 0;
  /** Heartbeat batches sent (each carries a turn's heartbeats for one peer), for metrics and tests. */
  heartbeatBatchesSent = 0;
  /** Whether this node reads heartbeat batches (and says so), and sends them to peers that do. */
  readonly readsBatches: boolean;

  constructor(opts: HttpTransportOptions) {
    this.self = opts.self;
    this.clusterId = opts.clusterId;
    this.logger = opts.logger ?? { info: () => {}, warn: (m) => console.warn(`ballot transport: ${m}`) };
    this.maxQueueBytes = opts.maxQueueBytes ?? 64 << 20;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 10_000;
    this.pingIntervalMs = opts.pingIntervalMs ?? Math.max(50, Math.floor(this.idleTimeoutMs / 3));
    this.admit = opts.admit ?? (() => null);
    this.formerClusterId = opts.formerClusterId;
    this.priority = opts.priority ?? 0;
    this.onRemoved = opts.onRemoved;
    this.tls = opts.tls;
    this.groups = opts.groups ?? 1;
    // One group has at most one heartbeat per peer per tick: nothing to batch.
    this.readsBatches = this.groups > 1 && opts.heartbeatBatches !== false;
    this.setPeers(opts.peers);
  }

  start(onMessage: (m: Message, group: number) => void): void {
    this.onMessage = onMessage;
    // Every peer is dialled at once and kept connected (redialled when a stream closes), as etcd
    // does: after a restart or a heal the first PreVote to a peer other than the leader would
    // otherwise pay a TCP (and TLS) handshake and the upgrade, a round trip or two over a WAN.
    for (const link of this.links.values()) link.dial();
  }

  setPeers(peers: ReadonlyMap<NodeId, string>): void {
    for (const [id, link] of this.links) {
      if (!peers.has(id)) {
        link.close();
        this.links.delete(id);
      }
    }
    for (const [id, url] of peers) {
      if (id === this.self) continue;
      const link = this.links.get(id);
      if (link && link.url === url) continue;
      link?.close();
      const fresh = new PeerLink(id, url, this);
      this.links.set(id, fresh);
      if (this.onMessage) fresh.dial();
    }
    this.recheckInbound();
  }

  /** Cuts streams from peers no longer admitted (removed members), so they learn it on reconnect. */
  recheckInbound(): void {
    for (const [socket, from] of this.inbound) if (this.admit(from) !== null) socket.destroy();
  }

  send(messages: readonly Message[], group = 0): void {
    if (this.closed || messages.length === 0) return;
    // One write per peer per batch; with several groups, plain heartbeats wait for the turn's
    // others to the same peer and leave with them as one message.
    const byPeer = new Map<NodeId, Uint8Array[]>();
    for (const m of messages) {
      const link = this.links.get(m.to);
      if (!link) continue;
      if (link.batches && batchable(m)) {
        link.queueBeat(group, m);
        continue;
      }
      let list = byPeer.get(m.to);
      if (!list) {
        list = [];
        byPeer.set(m.to, list);
      }
      if (link.beatGroups.has(group)) {
        // This group's queued heartbeat goes first: a group's messages to a peer keep their order.
        if (list.length > 0) link.send(Buffer.concat(list));
        list.length = 0;
        link.flushBeats();
      }
      list.push(encodeFramedMessage(m, group));
    }
    for (const [to, frames] of byPeer) {
      if (frames.length === 0) continue;
      this.links.get(to)?.send(frames.length === 1 ? frames[0]! : Buffer.concat(frames));
    }
  }

  /** Serves peer streams on `server` (the node's own, or an application's). */
  attach(server: http.Server): void {
    server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      if (!this.handleUpgrade(req, socket, head) && server.listenerCount("upgrade") === 1) {
        refuse(socket, 404, "no such upgrade endpoint");
      }
    });
  }

  /** Takes over an upgrade request if it is for the peer protocol; returns false when it is not. */
  handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const path = (req.url ?? "").split("?")[0];
    if (path !== RAFT_PATH) return false;
    const h = req.headers;
    const from = headerValue(h["x-ballot-from"]);
    const to = headerValue(h["x-ballot-to"]);
    const cluster = headerValue(h["x-ballot-cluster"]);
    if (this.closed) return refuse(socket, 503, "node is shutting down");
    if (req.method !== "GET" || (h.upgrade ?? "").toLowerCase() !== UPGRADE_PROTOCOL) {
      return refuse(socket, 400, `expected GET ${RAFT_PATH} with Upgrade: ${UPGRADE_PROTOCOL}`);
    }
    // Before anything else is said to it: who is calling must be proven first.
    const tlsProblem = this.tls ? peerCertificateProblem(req.socket, from, this.tls) : null;
    if (tlsProblem) {
      this.warnOnce(`refused a peer stream from '${from.slice(0, 64)}': ${tlsProblem}`);
      return refuse(socket, 403, `peer stream refused: ${tlsProblem}`);
    }
    if (
      cluster !== this.clusterId &&
      cluster === this.formerClusterId &&
      this.formerClusterId !== undefined
    ) {
      return refuse(
        socket,
        410,
        `cluster ${cluster} was replaced by ${this.clusterId} (--force-new-cluster)`,
        "member_removed",
        {
          "X-Ballot-Node": this.self,
          "X-Ballot-Cluster": cluster,
        },
      );
    }
    if (cluster !== this.clusterId) {
      this.logger.warn(
        `refused a peer stream from '${from}': it belongs to cluster '${cluster}', this node to '${this.clusterId}'`,
      );
      return refuse(socket, 409, `cluster mismatch: this node belongs to cluster '${this.clusterId}'`);
    }
    if (!from || from.length > 256) return refuse(socket, 400, "missing X-Ballot-From");
    if (to && to !== this.self) {
      this.logger.warn(`refused a peer stream from '${from}' meant for '${to}': this node is '${this.self}'`);
      return refuse(socket, 409, `this node is '${this.self}', not '${to}'`);
    }
    const notAdmitted = this.admit(from);
    if (notAdmitted !== null) {
      return refuse(socket, 410, notAdmitted, "member_removed", {
        "X-Ballot-Node": this.self,
        "X-Ballot-Cluster": this.clusterId,
      });
    }
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${UPGRADE_PROTOCOL}\r\nX-Ballot-Node: ${this.self}\r\n${this.readsBatches ? "X-Ballot-Batches: heartbeats\r\n" : ""}\r\n`,
    );
    const priority = Number(headerValue(h["x-ballot-priority"]));
    if (Number.isSafeInteger(priority)) this.priorities.set(from, priority);
    this.serveInbound(from, socket, head);
    return true;
  }

  private readonly warned = new Map<string, number>();

  /** Logs a refusal at most once a minute: a refused peer keeps reconnecting. */
  private warnOnce(line: string): void {
    const now = Date.now();
    if ((this.warned.get(line) ?? 0) > now - 60_000) return;
    if (this.warned.size >= 100) this.warned.clear();
    this.warned.set(line, now);
    this.logger.warn(line);
  }

  private serveInbound(from: NodeId, socket: Duplex, head: Buffer): void {
    this.inbound.set(socket, from);
    const reader = new FrameReader();
    const s = socket as Socket;
    if (typeof s.setNoDelay === "function") s.setNoDelay(true);
    if (typeof s.setTimeout === "function") {
      s.setTimeout(this.idleTimeoutMs, () => {
        this.logger.warn(`peer ${from}: no traffic for ${this.idleTimeoutMs}ms, closing its stream`);
        socket.destroy();
      });
    }
    const onData = (chunk: Buffer): void => {
      this.heardAt.set(from, performance.now());
      try {
        for (const f of reader.push(chunk)) {
          if (f.byteLength === 0) continue; // ping
          if (this.readsBatches && isHeartbeatBatch(f)) {
            // Checked whole before any of it is delivered.
            const batch = decodeHeartbeatBatch(f);
            for (const { group, message: m } of batch) this.checkInbound(from, m, group);
            for (const { group, message: m } of batch) this.onMessage?.(m, group);
            continue;
          }
          const { group, message: m } = decodeGroupMessage(f);
          this.checkInbound(from, m, group);
          this.onMessage?.(m, group);
        }
      } catch (e) {
        this.rejected++;
        this.logger.warn(`peer ${from}: ${(e as Error).message}; disconnecting it`);
        socket.destroy();
      }
    };
    socket.on("data", onData);
    socket.on("error", () => {});
    socket.on("close", () => this.inbound.delete(socket));
    if (head.length > 0) onData(head);
  }

  /** Throws CodecError for a message that is not from the stream's peer to this node, or of a group it lacks. */
  private checkInbound(from: NodeId, m: Message, group: number): void {
    if (m.from !== from || m.to !== this.self) {
      throw new CodecError(
        `message from '${m.from}' to '${m.to}' on the stream of '${from}' to '${this.self}'`,
      );
    }
    if (group >= this.groups)
      throw new CodecError(`a message of group ${group}, but this node has ${this.groups}`);
  }

  /** When (performance.now()) `peer` last sent this node anything, pings included; undefined if never. */
  lastHeard(peer: NodeId): number | undefined {
    return this.heardAt.get(peer);
  }

  /** The priority `peer` announced, if it has opened a stream to this node. */
  peerPriority(peer: NodeId): number | undefined {
    return this.priorities.get(peer);
  }

  status(): PeerStatus[] {
    return [...this.links.values()].map((l) => ({
      id: l.id,
      url: l.url,
      connected: l.socket !== null && !l.connecting,
      queuedBytes: l.queuedBytes + (l.socket?.writableLength ?? 0),
      dropped: l.dropped,
    }));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const l of this.links.values()) l.close();
    for (const s of this.inbound.keys()) s.destroy();
    this.inbound.clear();
  }
}

function headerValue(v: string | string[] | undefined): string {
  return Array.isArray(v) ? (v[0] ?? "") : (v ?? "");
}

function refuse(
  socket: Duplex,
  status: number,
  message: string,
  code = "peer_refused",
  headers: Record<string, string> = {},
): true {
  const body = JSON.stringify({ error: { code, message } });
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join("");
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ""}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}Connection: close\r\n\r\n${body}`,
  );
  return true;
}
