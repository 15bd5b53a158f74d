/**
 * A fault-injecting in-memory file system for storage tests and the simulator. It keeps, per file,
 * what has been made durable (by fdatasync) apart from what was only written, and per directory
 * which names are durable (by a directory fsync). crash() then loses what a power cut may lose:
 * unsynced bytes (all of them, or a torn prefix, or a zero-filled tail) and unsynced directory
 * changes. It can also flip bits and fail syncs. fdatasync completion is handed to an injected
 * scheduler, so the simulator decides when disks finish.
 *
 * Owns the model of a disk; must never know what the files mean.
 */
import { basename, dirname } from "node:path";
import { type RandomSource, randomInt } from "../../src/raft/random.js";
import type { FileSystem } from "../../src/storage/fs.js";

class Inode {
  data: Uint8Array = new Uint8Array(64);
  len = 0;
  durableLen = 0;
  /** The durable content, when a write or truncate touched bytes that were already durable. */
  durableCopy: Uint8Array | null = null;

  protect(): void {
    if (!this.durableCopy && this.durableLen > 0) this.durableCopy = this.data.slice(0, this.durableLen);
  }

  ensure(n: number): void {
    if (n <= this.data.length) return;
    let cap = this.data.length;
    while (cap < n) cap *= 2;
    const d = new Uint8Array(cap);
    d.set(this.data.subarray(0, this.len));
    this.data = d;
  }

  makeDurable(): void {
    this.durableLen = this.len;
    this.durableCopy = null;
  }
}

interface Dir {
  live: Map<string, Inode>;
  durable: Map<string, Inode>;
}

export type CrashMode = "lose" | "tear" | "zero" | "random";

export interface FaultFsOptions {
  /** Draws the torn length and the crash mode for "random". Default: a fixed sequence. */
  readonly random?: RandomSource;
  /** Runs an fdatasync completion; default runs it on the next macrotask. */
  readonly schedule?: (complete: () => void) => void;
}

function errno(code: string, msg: string): Error {
  const e = new Error(`${code}: ${msg}`) as NodeJS.ErrnoException;
  e.code = code;
  return e;
}

export class FaultFs implements FileSystem {
  private dirs = new Map<string, Dir>();
  private fds = new Map<number, Inode>();
  private nextFd = 3;
  private readonly random: RandomSource;
  schedule: (complete: () => void) => void;
  /** The next this-many syncs fail with EIO. */
  failSyncs = 0;
  /** Bumped by crash(): completions scheduled before it never happen (the machine lost power). */
  private epoch = 0;
  syncs = 0;
  writes = 0;

  constructor(opts: FaultFsOptions = {}) {
    let x = 0.5;
    this.random =
      opts.random ??
      (() => {
        x = (x * 9301 + 0.49297) % 1;
        return x;
      });
    this.schedule = opts.schedule ?? ((fn) => setImmediate(fn));
    this.dirs.set("/", { live: new Map(), durable: new Map() });
  }

  private dir(path: string): Dir {
    const d = this.dirs.get(path);
    if (!d) throw errno("ENOENT", `no such directory ${path}`);
    return d;
  }

  private lookup(path: string): Inode | undefined {
    return this.dirs.get(dirname(path))?.live.get(basename(path));
  }

  private fd(fd: number): Inode {
    const f = this.fds.get(fd);
    if (!f) throw errno("EBADF", `bad file descriptor ${fd}`);
    return f;
  }

  mkdirp(path: string): void {
    // Directories themselves are modelled as always durable; their entries are not.
    let p = path;
    const chain: string[] = [];
    while (!this.dirs.has(p)) {
      chain.push(p);
      p = dirname(p);
    }
    for (const d of chain.reverse()) this.dirs.set(d, { live: new Map(), durable: new Map() });
  }

  list(dir: string): string[] {
    const d = this.dirs.get(dir);
    if (!d) return [];
    const subdirs = [...this.dirs.keys()]
      .filter((k) => k !== dir && dirname(k) === dir)
      .map((k) => basename(k));
    return [...d.live.keys(), ...subdirs];
  }

  exists(path: string): boolean {
    return this.dirs.has(path) || this.lookup(path) !== undefined;
  }

  open(path: string): number {
    const f = this.lookup(path);
    if (!f) throw errno("ENOENT", `no such file ${path}`);
    const fd = this.nextFd++;
    this.fds.set(fd, f);
    return fd;
  }

  create(path: string): number {
    const d = this.dir(dirname(path));
    if (d.live.has(basename(path))) throw errno("EEXIST", `file exists ${path}`);
    const f = new Inode();
    d.live.set(basename(path), f);
    const fd = this.nextFd++;
    this.fds.set(fd, f);
    return fd;
  }

  size(fd: number): number {
    return this.fd(fd).len;
  }

  write(fd: number, data: Uint8Array, position: number): void {
    const f = this.fd(fd);
    this.writes++;
    if (position < f.durableLen) f.protect();
    f.ensure(position + data.byteLength);
    if (position > f.len) f.data.fill(0, f.len, position);
    f.data.set(data, position);
    f.len = Math.max(f.len, position + data.byteLength);
  }

  read(fd: number, position: number, length: number): Uint8Array {
    const f = this.fd(fd);
    const end = Math.min(f.len, position + length);
    return position >= end ? new Uint8Array(0) : f.data.slice(position, end);
  }

  truncate(fd: number, length: number): void {
    const f = this.fd(fd);
    if (length < f.durableLen) f.protect();
    f.ensure(length);
    if (length > f.len) f.data.fill(0, f.len, length);
    f.len = length;
  }

  sync(fd: number, done: (err: Error | null) => void): void {
    const f = this.fd(fd);
    this.syncs++;
    const epoch = this.epoch;
    if (this.failSyncs > 0) {
      this.failSyncs--;
      this.schedule(() => {
        if (epoch === this.epoch) done(errno("EIO", "injected fdatasync failure"));
      });
      return;
    }
    this.schedule(() => {
      if (epoch !== this.epoch) return;
      f.makeDurable();
      done(null);
    });
  }

  syncNow(fd: number): void {
    this.syncs++;
    if (this.failSyncs > 0) {
      this.failSyncs--;
      throw errno("EIO", "injected fdatasync failure");
    }
    this.fd(fd).makeDurable();
  }

  close(fd: number): void {
    this.fds.delete(fd);
  }

  rename(from: string, to: string): void {
    const f = this.lookup(from);
    if (!f) throw errno("ENOENT", `no such file ${from}`);
    this.dir(dirname(from)).live.delete(basename(from));
    this.dir(dirname(to)).live.set(basename(to), f);
  }

  unlink(path: string): void {
    const d = this.dir(dirname(path));
    if (!d.live.delete(basename(path))) throw errno("ENOENT", `no such file ${path}`);
  }

  syncDir(dir: string): void {
    const d = this.dir(dir);
    d.durable = new Map(d.live);
  }

  readFile(path: string): Uint8Array {
    const f = this.lookup(path);
    if (!f) throw errno("ENOENT", `no such file ${path}`);
    return f.data.slice(0, f.len);
  }

  /**
   * A power cut: directories keep only their durable names, files only their durable bytes plus,
   * depending on the mode, a torn prefix of what was written after the last sync ("tear"), a
   * zero-filled stretch of it ("zero"), or nothing of it ("lose"). Open descriptors are gone.
   */
  crash(mode: CrashMode = "random"): void {
    this.epoch++;
    this.fds.clear();
    const seen = new Set<Inode>();
    for (const d of this.dirs.values()) {
      d.live = new Map(d.durable);
      for (const f of d.live.values()) {
        if (seen.has(f)) continue;
        seen.add(f);
        this.crashFile(f, mode);
      }
    }
  }

  private crashFile(f: Inode, mode: CrashMode): void {
    if (f.durableCopy) {
      f.data = f.durableCopy;
      f.len = f.durableCopy.length;
      f.makeDurable();
      return;
    }
    const unsynced = f.len - f.durableLen;
    let m = mode;
    if (m === "random") m = (["lose", "tear", "tear", "zero"] as const)[randomInt(this.random, 0, 4)]!;
    if (unsynced > 0 && m === "tear") {
      f.len = f.durableLen + randomInt(this.random, 0, unsynced + 1);
    } else if (unsynced > 0 && m === "zero") {
      // Blocks were allocated but their data never written: zeros from a sector boundary to the end.
      const keep = randomInt(this.random, 0, unsynced + 1);
      const zeroFrom = Math.max(f.durableLen, Math.floor((f.durableLen + keep) / 512) * 512);
      f.data.fill(0, zeroFrom, f.len);
    } else {
      f.len = f.durableLen;
    }
    f.makeDurable();
  }

  /** Flips bits (xor `mask`) of the byte at `offset` of a file, durable copy included. */
  corrupt(path: string, offset: number, mask = 0x01): void {
    const f = this.lookup(path);
    if (!f) throw errno("ENOENT", `no such file ${path}`);
    if (offset >= f.len) throw new RangeError(`offset ${offset} beyond ${path} (${f.len} bytes)`);
    f.data[offset]! ^= mask;
    if (f.durableCopy && offset < f.durableCopy.length) f.durableCopy[offset]! ^= mask;
  }

  /** Length of a file (durable or not). */
  fileSize(path: string): number {
    const f = this.lookup(path);
    if (!f) throw errno("ENOENT", `no such file ${path}`);
    return f.len;
  }

  /** Cuts a file short (as a torn write would). */
  cut(path: string, length: number): void {
    const f = this.lookup(path);
    if (!f) throw errno("ENOENT", `no such file ${path}`);
    f.len = Math.min(f.len, length);
    f.makeDurable();
  }
}
