import fs from 'node:fs';
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
  close(): void {
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
