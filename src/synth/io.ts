import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SynthError } from './errors.js';

/** Write `data` to `file` atomically: temp file in the same folder, fsync, rename, fsync the folder. */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const dir = path.dirname(path.resolve(file));
  fs.mkdirSync(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
  const fd = fs.openSync(tmp, 'w');
  try {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let off = 0;
    while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  fsyncDir(dir);
}

/** Rename `from` to `to` and make the rename durable. */
export function renameDurable(from: string, to: string): void {
  fs.renameSync(from, to);
  fsyncDir(path.dirname(path.resolve(to)));
}

function fsyncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // Some file systems refuse fsync on a directory; the rename itself is still atomic there.
  }
}

/** An append-only file whose every `append` is fsynced before it returns. */
export class DurableAppender {
  private fd: number;
  constructor(readonly file: string, truncateTo?: number) {
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    this.fd = fs.openSync(file, fs.existsSync(file) ? 'r+' : 'w+');
    const size = fs.fstatSync(this.fd).size;
    const keep = truncateTo ?? size;
    if (keep > size) throw new SynthError(`${file}: checkpoint says ${keep} bytes but the file has ${size}`);
    fs.ftruncateSync(this.fd, keep);
    this.position = keep;
  }
  position: number;
  append(text: string): void {
    const buf = Buffer.from(text, 'utf8');
    let off = 0;
    while (off < buf.length) off += fs.writeSync(this.fd, buf, off, buf.length - off, this.position + off);
    this.position += buf.length;
    fs.fsyncSync(this.fd);
  }
  closed = false;
  close(): void {
    if (this.closed) return;
    this.closed = true;
    fs.closeSync(this.fd);
  }
}

/** One parsed JSONL line, or the reason it could not be parsed. */
export type JsonlLine<T> = { line: number; value: T } | { line: number; error: string };

/**
 * Parse JSONL text. Each non-blank line must be a JSON value accepted by `validate` (which returns an error
 * message or null). Errors carry 1-based line numbers; a final line without a newline is still read.
 */
export function parseJsonl<T>(text: string, validate: (v: unknown) => string | null): JsonlLine<T>[] {
  const out: JsonlLine<T>[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = (lines[i] ?? '').trim();
    if (raw.length === 0) continue;
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch (e) {
      out.push({ line: i + 1, error: `not valid JSON (${(e as Error).message})` });
      continue;
    }
    const err = validate(v);
    out.push(err === null ? { line: i + 1, value: v as T } : { line: i + 1, error: err });
  }
  return out;
}

/** An exclusive lock held through a file; `release` removes the file (once, and only while it is still ours). */
export interface FileLock {
  readonly file: string;
  /** Set when SIGINT or SIGTERM arrived while the process has other handlers for it: the holder should stop. */
  interrupted: boolean;
  release(): void;
}

interface LockOwner {
  pid: number;
  host: string;
  started: string;
}

/** A lock file younger than this with no readable owner may be being written by its creator right now. */
const UNREADABLE_LOCK_GRACE_MS = 10_000;

/** Who holds `file`: its owner when readable, and whether that owner may still be running. */
function lockHolder(file: string): { owner: LockOwner | null; alive: boolean } {
  let owner: LockOwner | null = null;
  try {
    const v = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<LockOwner>;
    if (Number.isSafeInteger(v.pid) && (v.pid as number) > 0 && typeof v.host === 'string') owner = { pid: v.pid!, host: v.host, started: String(v.started ?? '') };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { owner: null, alive: false };
  }
  if (!owner) {
    let age = Infinity;
    try {
      age = Date.now() - fs.statSync(file).mtimeMs;
    } catch {
      // gone meanwhile
    }
    return { owner: null, alive: age < UNREADABLE_LOCK_GRACE_MS };
  }
  // A process on another machine (a shared folder) cannot be checked from here: assume it runs.
  if (owner.host !== os.hostname()) return { owner, alive: true };
  try {
    process.kill(owner.pid, 0);
    return { owner, alive: true };
  } catch (e) {
    return { owner, alive: (e as NodeJS.ErrnoException).code === 'EPERM' };
  }
}

const heldLocks = new Set<FileLock>();

function releaseAllLocks(): void {
  for (const l of [...heldLocks]) l.release();
}

function onTerminatingSignal(signal: NodeJS.Signals): void {
  if (process.listenerCount(signal) > 1) {
    // Someone else decides what the signal does: ask the holders to stop; they release their locks themselves.
    for (const l of heldLocks) l.interrupted = true;
    return;
  }
  // Alone: release the locks and die of the signal as if no handler were installed.
  releaseAllLocks();
  watchSignals(false);
  process.kill(process.pid, signal);
}

let watching = false;
function watchSignals(on: boolean): void {
  if (on === watching) return;
  watching = on;
  if (on) {
    process.on('SIGINT', onTerminatingSignal);
    process.on('SIGTERM', onTerminatingSignal);
    process.on('exit', releaseAllLocks);
  } else {
    process.off('SIGINT', onTerminatingSignal);
    process.off('SIGTERM', onTerminatingSignal);
    process.off('exit', releaseAllLocks);
  }
}

/**
 * Take `file` as an exclusive lock: created with the `wx` flag (fails if it exists), holding this process's
 * pid and host. A lock whose process is gone (checked with `process.kill(pid, 0)` on the same host) is taken
 * over; a live one is refused with an error that starts with `what`. The lock is released by `release()`, at
 * process exit, and on SIGINT/SIGTERM.
 */
export function acquireLock(file: string, what: string): FileLock {
  const me: LockOwner = { pid: process.pid, host: os.hostname(), started: new Date().toISOString() };
  for (let tries = 0; tries < 5; tries++) {
    let fd: number;
    try {
      fd = fs.openSync(file, 'wx');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') throw new SynthError(`${what}: cannot create the lock file ${file} (${code ?? (e as Error).message})`);
      const holder = lockHolder(file);
      if (holder.alive) {
        const who = holder.owner ? `process ${holder.owner.pid}${holder.owner.host !== me.host ? ` on ${holder.owner.host}` : ''}, since ${holder.owner.started}` : 'a process that is starting';
        throw new SynthError(`${what}: another synthesis is running on it (${who}; lock file ${file}). Wait for it to finish, or delete the lock file if that run is gone.`);
      }
      // Stale: the process that made it is gone.
      fs.rmSync(file, { force: true });
      continue;
    }
    try {
      fs.writeSync(fd, JSON.stringify(me));
    } finally {
      fs.closeSync(fd);
    }
    let released = false;
    const lock: FileLock = {
      file,
      interrupted: false,
      release() {
        if (released) return;
        released = true;
        heldLocks.delete(lock);
        if (heldLocks.size === 0) watchSignals(false);
        try {
          const v = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<LockOwner>;
          if (v.pid === me.pid && v.started === me.started) fs.rmSync(file, { force: true });
        } catch {
          // already gone (or replaced by a lock that is not ours): leave it
        }
      },
    };
    heldLocks.add(lock);
    watchSignals(true);
    return lock;
  }
  throw new SynthError(`${what}: could not take the lock file ${file} (it keeps reappearing)`);
}
