/**
 * HTTP(S) downloads into a cache: streamed to `<dest>.part`, md5/sha256-checked, then renamed into
 * place, so a crash never leaves a file that looks complete. A cached file whose digest is wrong is
 * deleted and fetched again.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { SingleBar, Presets } from 'cli-progress';

export interface DownloadOptions {
  /** Expected md5 (hex); checked on the cached file and on the fresh download. */
  md5?: string;
  /** Expected sha256 (hex), checked like md5 (ONNX model zoo files publish theirs in their Git LFS pointers). */
  sha256?: string;
  /** Show progress: a bar on a terminal, a line every 10% elsewhere. Default true. */
  progress?: boolean;
  /** No progress and no messages (overrides progress). */
  quiet?: boolean;
  /** Give up when the connection is silent this long (ms). Default 60 s. */
  timeoutMs?: number;
}

/** md5 of a file read whole (for files of tens of MB, where a synchronous answer is handier). */
export function md5FileSync(file: string): string {
  return crypto.createHash('md5').update(fs.readFileSync(file)).digest('hex');
}

/** md5 of a file, streamed. */
export function md5File(file: string): Promise<string> {
  return hashFile(file, 'md5');
}

/** A digest (md5, sha256) of a file, streamed. */
export function hashFile(file: string, algorithm: 'md5' | 'sha256'): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = crypto.createHash(algorithm);
    fs.createReadStream(file)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}

function humanBytes(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e3).toFixed(0)} kB`;
}

/** Reports progress on stderr (stdout stays clean for --json output). */
class Progress {
  private bar?: SingleBar;
  private lastDecile = -1;
  constructor(private readonly label: string, private readonly enabled: boolean) {}

  start(total: number): void {
    if (!this.enabled) return;
    if (process.stderr.isTTY && total > 0) {
      this.bar = new SingleBar(
        { format: `${this.label} [{bar}] {percentage}% | {done} of {size} | eta {eta_formatted}`, stream: process.stderr, hideCursor: true },
        Presets.shades_classic,
      );
      this.bar.start(total, 0, { done: humanBytes(0), size: humanBytes(total) });
    } else {
      process.stderr.write(`${this.label}: downloading${total > 0 ? ` ${humanBytes(total)}` : ''}\n`);
    }
  }

  update(done: number, total: number): void {
    if (!this.enabled) return;
    if (this.bar) {
      this.bar.update(done, { done: humanBytes(done), size: humanBytes(total) });
      return;
    }
    if (total > 0) {
      const decile = Math.floor((10 * done) / total);
      if (decile > this.lastDecile) {
        this.lastDecile = decile;
        process.stderr.write(`${this.label}: ${decile * 10}% (${humanBytes(done)})\n`);
      }
    }
  }

  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}

/** GET with redirects; resolves with the response of the final URL. */
function get(url: string, timeoutMs: number, redirects = 5): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      reject(new Error(`${url}: not a valid URL`));
      return;
    }
    const client = parsed.protocol === 'https:' ? https : parsed.protocol === 'http:' ? http : undefined;
    if (!client) {
      reject(new Error(`${url}: only http and https URLs can be downloaded`));
      return;
    }
    const req = client.get(parsed, { headers: { 'user-agent': 'tl-workbench' } }, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        if (redirects === 0) return reject(new Error(`${url}: too many redirects`));
        resolve(get(new URL(res.headers.location, parsed).toString(), timeoutMs, redirects - 1));
        return;
      }
      if (status !== 200) {
        res.resume();
        reject(new Error(`${url}: HTTP ${status} ${res.statusMessage ?? ''}`.trim()));
        return;
      }
      resolve(res);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${url}: no data for ${timeoutMs / 1000} s`)));
    req.on('error', (e) => reject(e.message.startsWith(url) ? e : new Error(`${url}: ${e.message}`)));
  });
}

/** Streams the body into `file`, returning its md5 and sha256. */
async function fetchInto(url: string, file: string, progress: Progress, timeoutMs: number): Promise<{ md5: string; sha256: string }> {
  const res = await get(url, timeoutMs);
  const total = Number(res.headers['content-length'] ?? 0);
  const hash = crypto.createHash('md5');
  const hash256 = crypto.createHash('sha256');
  const out = fs.createWriteStream(file);
  let done = 0;
  progress.start(total);
  try {
    await new Promise<void>((resolve, reject) => {
      res.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        hash256.update(chunk);
        done += chunk.length;
        progress.update(done, total);
      });
      res.on('error', (e) => reject(new Error(`${url}: ${e.message}`)));
      res.on('aborted', () => reject(new Error(`${url}: connection closed after ${done} bytes`)));
      out.on('error', (e) => reject(new Error(`${file}: ${e.message}`)));
      out.on('finish', () => resolve());
      res.pipe(out);
    });
  } finally {
    progress.stop();
  }
  if (total > 0 && done !== total) throw new Error(`${url}: received ${done} of ${total} bytes`);
  return { md5: hash.digest('hex'), sha256: hash256.digest('hex') };
}

/**
 * Downloads `url` to `dest` unless `dest` already holds it (md5 match, or simply present when no md5
 * is given). Returns `dest`.
 */
export async function download(url: string, dest: string, opts: DownloadOptions = {}): Promise<string> {
  const expected: { algorithm: 'md5' | 'sha256'; digest: string }[] = [];
  if (opts.md5) expected.push({ algorithm: 'md5', digest: opts.md5.toLowerCase() });
  if (opts.sha256) expected.push({ algorithm: 'sha256', digest: opts.sha256.toLowerCase() });
  const name = path.basename(dest);
  const say = (msg: string) => {
    if (!opts.quiet) process.stderr.write(`${msg}\n`);
  };
  if (fs.existsSync(dest)) {
    let corrupt: string | undefined;
    for (const e of expected) {
      const cached = await hashFile(dest, e.algorithm);
      if (cached !== e.digest) corrupt = `${e.algorithm} ${cached}, expected ${e.digest}`;
    }
    if (!corrupt) return dest;
    say(`${dest}: cached copy is corrupt (${corrupt}); deleting it and downloading again`);
    fs.rmSync(dest, { force: true });
  }
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const part = `${dest}.part-${process.pid}`;
  const progress = new Progress(name, opts.progress !== false && !opts.quiet);
  try {
    const got = await fetchInto(url, part, progress, opts.timeoutMs ?? 60_000);
    for (const e of expected) {
      if (got[e.algorithm] !== e.digest) {
        throw new Error(`${url}: ${e.algorithm} mismatch for the downloaded file: got ${got[e.algorithm]}, expected ${e.digest} (corrupt or a different file)`);
      }
    }
    fs.renameSync(part, dest);
  } finally {
    fs.rmSync(part, { force: true });
  }
  say(`${dest}: downloaded${expected.map((e) => `, ${e.algorithm} ok`).join('')}`);
  return dest;
}
