/**
 * The file operations the storage layer uses, behind one interface so tests can swap in a
 * fault-injecting file system (lost unsynced writes, torn writes, flipped bits) and the simulator
 * can drive fsync completion from simulated time. Owns the mapping to node:fs; must never decide
 * anything about records, segments or recovery.
 *
 * Writes and reads are synchronous (they touch the page cache); fdatasync is asynchronous so the
 * event loop keeps running, and batching more writes, while the disk flushes — that is what makes
 * group commit work.
 */
import * as fs from "node:fs";
import { join } from "node:path";

export interface FileSystem {
  /** Creates a directory and its parents if missing. */
  mkdirp(path: string): void;
  /** Names in a directory (empty when it does not exist). */
  list(dir: string): string[];
  exists(path: string): boolean;
  /** Opens an existing file for reading and writing. */
  open(path: string): number;
  /** Creates a new file (failing if it exists) for reading and writing. */
  create(path: string): number;
  size(fd: number): number;
  /** Writes all of `data` at `position`. */
  write(fd: number, data: Uint8Array, position: number): void;
  /** Reads up to `length` bytes at `position` into a new buffer (shorter at end of file). */
  read(fd: number, position: number, length: number): Uint8Array;
  truncate(fd: number, length: number): void;
  /** fdatasync, completing asynchronously. */
  sync(fd: number, done: (err: Error | null) => void): void;
  syncNow(fd: number): void;
  close(fd: number): void;
  rename(from: string, to: string): void;
  unlink(path: string): void;
  /** Makes creations, renames and unlinks in `dir` durable. */
  syncDir(dir: string): void;
  readFile(path: string): Uint8Array;
}

/** The real file system. */
export const nodeFileSystem: FileSystem = {
  mkdirp(path) {
    fs.mkdirSync(path, { recursive: true });
  },
  list(dir) {
    try {
      return fs.readdirSync(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw e;
    }
  },
  exists(path) {
    return fs.existsSync(path);
  },
  open(path) {
    return fs.openSync(path, "r+");
  },
  create(path) {
    return fs.openSync(path, "wx+");
  },
  size(fd) {
    return fs.fstatSync(fd).size;
  },
  write(fd, data, position) {
    let done = 0;
    while (done < data.byteLength) {
      done += fs.writeSync(fd, data, done, data.byteLength - done, position + done);
    }
  },
  read(fd, position, length) {
    const buf = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const n = fs.readSync(fd, buf, got, length - got, position + got);
      if (n === 0) break;
      got += n;
    }
    return got === length ? buf : buf.subarray(0, got);
  },
  truncate(fd, length) {
    fs.ftruncateSync(fd, length);
  },
  sync(fd, done) {
    fs.fdatasync(fd, (err) => done(err ?? null));
  },
  syncNow(fd) {
    fs.fdatasyncSync(fd);
  },
  close(fd) {
    fs.closeSync(fd);
  },
  rename(from, to) {
    fs.renameSync(from, to);
  },
  unlink(path) {
    fs.unlinkSync(path);
  },
  syncDir(dir) {
    const fd = fs.openSync(dir, "r");
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  },
  readFile(path) {
    return fs.readFileSync(path);
  },
};

export { join };
