/**
 * A 3-node etcd cluster of Debian's etcd-server (installed by scripts/install-etcd.sh) on this
 * machine, for benchmarks that compare with it in the same run. Owns starting it, finding its
 * leader and stopping it; must never be used by tests (they have their own).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePorts, sleep } from "../test/integration/procs.js";

export async function etcdCluster(): Promise<{
  clients: string[];
  stop(): void;
  leader: string;
  follower: string;
  /** The members' process ids, for benchmarks that count their CPU. */
  pids: number[];
}> {
  execFileSync("bash", [new URL("../../scripts/install-etcd.sh", import.meta.url).pathname], {
    stdio: "inherit",
  });
  const dir = mkdtempSync(join(process.env.BALLOT_BENCH_DIR ?? tmpdir(), "ballot-bench-etcd-"));
  const ports = await freePorts(6);
  const names = ["e1", "e2", "e3"];
  const peer = (i: number) => `http://127.0.0.1:${ports[3 + i]}`;
  const client = (i: number) => `http://127.0.0.1:${ports[i]}`;
  const initial = names.map((n, i) => `${n}=${peer(i)}`).join(",");
  const procs: ChildProcess[] = names.map((n, i) =>
    spawn(
      "etcd",
      [
        "--name",
        n,
        "--data-dir",
        join(dir, n),
        "--listen-client-urls",
        client(i),
        "--advertise-client-urls",
        client(i),
        "--listen-peer-urls",
        peer(i),
        "--initial-advertise-peer-urls",
        peer(i),
        "--initial-cluster",
        initial,
        "--initial-cluster-state",
        "new",
        "--log-level",
        "error",
      ],
      { stdio: "ignore" },
    ),
  );
  const stop = () => {
    for (const p of procs) p.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  };
  const clients = names.map((_, i) => client(i));
  for (let t = 0; t < 200; t++) {
    const st = await Promise.all(
      clients.map((c) =>
        fetch(`${c}/v3/maintenance/status`, { method: "POST", body: "{}" })
          .then((r) => r.json() as Promise<{ leader?: string; header?: { member_id?: string } }>)
          .catch(() => null),
      ),
    );
    const leaderIdx = st.findIndex((s) => s?.leader && s.header?.member_id === s.leader);
    if (leaderIdx >= 0) {
      return {
        clients,
        stop,
        leader: clients[leaderIdx]!,
        follower: clients[(leaderIdx + 1) % 3]!,
        pids: procs.map((p) => p.pid!),
      };
    }
    await sleep(100);
  }
  stop();
  throw new Error("etcd cluster did not elect a leader");
}
