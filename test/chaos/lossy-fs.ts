/**
 * The file system of a chaos test build of `ballot start`: the real disk, except that writes
 * stay in this process's memory until fdatasync — so a SIGKILL loses exactly what a power cut
 * could lose — and fdatasync can be made slow (a delay toggled with SIGUSR2). Owns the pending
 * writes; must never report a sync done before the data is written and fdatasync'd for real.
 */
import { type FileSystem, nodeFileSystem } from "../../src/storage/fs.js";

interface Pending {
  position: number;
  data: Uint8Array;
}

export class LossyFs implements FileSystem {
  private readonly pending = new Map<number, Pending[]>();
  /** Extra delay before every fdatasync while slow. */
  slowMs = 0;

  constructor(private readonly base: FileSystem = nodeFileSystem) {}

  private flush(fd: number): void {
    const list = this.pending.get(fd);
    if (!list) return;
    this.pending.delete(fd);
    for (const p of list) this.base.write(fd, p.data, p.position);
  }

  mkdirp(path: string): void {
    this.base.mkdirp(path);
  }
  list(dir: string): string[] {
    return this.base.list(dir);
  }
  exists(path: string): boolean {
    return this.base.exists(path);
  }
  open(path: string): number {
    return this.base.open(path);
  }
  create(path: string): number {
    return this.base.create(path);
  }
  size(fd: number): number {
    let size = this.base.size(fd);
    for (const p of this.pending.get(fd) ?? []) size = Math.max(size, p.position + p.data.byteLength);
    return size;
  }
  write(fd: number, data: Uint8Array, position: number): void {
    // Copied: the caller may reuse its buffer (the WAL's staging buffer does).
    const list = this.pending.get(fd) ?? [];
    list.push({ position, data: Uint8Array.from(data) });
    this.pending.set(fd, list);
  }
  read(fd: number, position: number, length: number): Uint8Array {
    const end = Math.min(position + length, this.size(fd));
    const out = new Uint8Array(Math.max(0, end - position));
    out.set(this.base.read(fd, position, out.byteLength));
    for (const p of this.pending.get(fd) ?? []) {
      const from = Math.max(position, p.position);
      const to = Math.min(end, p.position + p.data.byteLength);
      if (from < to) out.set(p.data.subarray(from - p.position, to - p.position), from - position);
    }
    return out;
  }
  truncate(fd: number, length: number): void {
    this.flush(fd);
    this.base.truncate(fd, length);
  }
  sync(fd: number, done: (err: Error | null) => void): void {
    const go = (): void => {
      this.flush(fd);
      this.base.sync(fd, done);
    };
    if (this.slowMs > 0) setTimeout(go, this.slowMs);
    else go();
  }
  syncNow(fd: number): void {
    this.flush(fd);
    this.base.syncNow(fd);
  }
  close(fd: number): void {
    // A file closed in a running process keeps its data (the page cache); only a kill loses it.
    this.flush(fd);
    this.base.close(fd);
  }
  rename(from: string, to: string): void {
    this.base.rename(from, to);
  }
  unlink(path: string): void {
    this.base.unlink(path);
  }
  syncDir(dir: string): void {
    this.base.syncDir(dir);
  }
  readFile(path: string): Uint8Array {
    return this.base.readFile(path);
  }
}
