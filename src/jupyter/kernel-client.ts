/**
 * A Jupyter kernel client in Node, for the tslab kernel: starts the kernel process as its kernel
 * spec does (`tslab kernel --config-path {connection_file}`), with a connection file of its own
 * (loopback ports, a random HMAC-SHA256 key), and speaks the Jupyter messaging protocol 5.3 over
 * zeromq: execute_request / execute_reply and kernel_info on shell, the cell's output on iopub,
 * shutdown_request (and interrupt_request for kernels that want it) on control, a stdin socket that
 * refuses input. Every message is signed and every received one checked.
 *
 * Left out, because a headless run of tslab does not need them: the heartbeat channel (the kernel
 * is our child process, so we watch the process instead), comms and widgets, completion and
 * inspection, restarts, and kernels on other machines.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { spawn, ChildProcess } from 'node:child_process';
import * as zmq from 'zeromq';

export const PROTOCOL_VERSION = '5.3';
const DELIMITER = Buffer.from('<IDS|MSG>');

export interface ConnectionInfo {
  transport: 'tcp';
  ip: string;
  shell_port: number;
  iopub_port: number;
  stdin_port: number;
  control_port: number;
  hb_port: number;
  key: string;
  signature_scheme: 'hmac-sha256';
  kernel_name: string;
}

export interface MessageHeader {
  msg_id: string;
  msg_type: string;
  session: string;
  username: string;
  date: string;
  version: string;
}

export interface KernelMessage {
  header: MessageHeader;
  parent_header: Partial<MessageHeader>;
  metadata: Record<string, unknown>;
  content: Record<string, unknown>;
  buffers: Buffer[];
}

/** Frames of a signed message: [...routing ids, <IDS|MSG>, hmac, header, parent, metadata, content, ...buffers]. */
export function encodeMessage(key: string, msg: Omit<KernelMessage, 'buffers'> & { buffers?: Buffer[] }, ids: Buffer[] = []): Buffer[] {
  const parts = [msg.header, msg.parent_header, msg.metadata, msg.content].map((p) => Buffer.from(JSON.stringify(p), 'utf8'));
  return [...ids, DELIMITER, Buffer.from(sign(key, parts), 'ascii'), ...parts, ...(msg.buffers ?? [])];
}

function sign(key: string, parts: Buffer[]): string {
  if (!key) return '';
  const hmac = crypto.createHmac('sha256', key);
  for (const p of parts) hmac.update(p);
  return hmac.digest('hex');
}

/** Parses and checks a received message; throws when it is malformed or its signature is wrong. */
export function decodeMessage(key: string, frames: Buffer[]): KernelMessage {
  const at = frames.findIndex((f) => f.equals(DELIMITER));
  if (at < 0 || frames.length < at + 6) throw new Error(`malformed kernel message (${frames.length} frames, delimiter at ${at})`);
  const signature = frames[at + 1].toString('ascii');
  const parts = frames.slice(at + 2, at + 6);
  const expected = Buffer.from(sign(key, parts), 'ascii');
  const got = Buffer.from(signature, 'ascii');
  if (got.length !== expected.length || !crypto.timingSafeEqual(got, expected)) throw new Error('kernel message with a wrong HMAC signature');
  const [header, parent_header, metadata, content] = parts.map((p) => JSON.parse(p.toString('utf8')));
  return { header, parent_header, metadata, content, buffers: frames.slice(at + 6) };
}

/** A free TCP port on the loopback interface (the kernel binds it a moment later, as jupyter_client does). */
function freePort(ip: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, ip, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Whether something accepts TCP connections on ip:port (a probe: connected, then closed at once). */
export function listening(ip: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: ip, port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

export async function newConnectionInfo(ip = '127.0.0.1'): Promise<ConnectionInfo> {
  const ports = new Set<number>();
  while (ports.size < 5) ports.add(await freePort(ip));
  const [shell_port, iopub_port, stdin_port, control_port, hb_port] = [...ports];
  return {
    transport: 'tcp',
    ip,
    shell_port,
    iopub_port,
    stdin_port,
    control_port,
    hb_port,
    key: crypto.randomBytes(32).toString('hex'),
    signature_scheme: 'hmac-sha256',
    kernel_name: 'tslab',
  };
}

/** The tslab launcher of this project (node_modules/tslab/bin/tslab). */
export function tslabLauncher(): string {
  return path.join(path.dirname(require.resolve('tslab/package.json')), 'bin', 'tslab');
}

export interface StartKernelOptions {
  /** The kernel's working folder (tslab resolves the cells' relative imports from it). */
  cwd: string;
  env?: NodeJS.ProcessEnv;
  /** Folder for the connection file (kept private: it holds the key). */
  runtimeDir: string;
  /** Seconds to wait until the kernel answers on shell and publishes on iopub. */
  startupTimeoutSeconds?: number;
  /** The kernel process's own output (outside cells): where to copy it as it arrives. */
  onProcessOutput?: (text: string) => void;
  /** 'signal' (SIGINT, tslab's kernel spec has no interrupt_mode, so this is the default) or 'message'. */
  interruptMode?: 'signal' | 'message';
}

export interface ExecuteResult {
  /** The execute_reply, or null when the kernel died or the time ran out first. */
  reply: KernelMessage | null;
  timedOut: boolean;
  /** Set when the kernel process ended before the cell did. */
  died?: string;
}

type Waiter = (msg: KernelMessage) => void;

export class KernelClient {
  private readonly session = crypto.randomUUID();
  private readonly shell: zmq.Dealer;
  private readonly control: zmq.Dealer;
  private readonly stdin: zmq.Dealer;
  private readonly iopub: zmq.Subscriber;
  private readonly replies = new Map<string, Waiter>();
  private readonly iopubHandlers = new Map<string, Waiter>();
  private closed = false;
  private exitInfo: string | null = null;
  private readonly exited: Promise<string>;
  /** The last 8000 characters the kernel process printed outside cells (for "the kernel died"). */
  processOutputTail = '';
  /** Messages dropped because their signature did not check out. */
  badSignatures = 0;

  private constructor(
    readonly connection: ConnectionInfo,
    readonly connectionFile: string,
    readonly process: ChildProcess,
    private readonly interruptMode: 'signal' | 'message',
  ) {
    const url = (port: number) => `${connection.transport}://${connection.ip}:${port}`;
    // One routing id for shell and stdin: a kernel sends input_request to the shell's sender.
    const routingId = this.session;
    this.shell = new zmq.Dealer({ linger: 0, routingId });
    this.control = new zmq.Dealer({ linger: 0 });
    this.stdin = new zmq.Dealer({ linger: 0, routingId });
    this.iopub = new zmq.Subscriber({ linger: 0 });
    this.shell.connect(url(connection.shell_port));
    this.control.connect(url(connection.control_port));
    this.stdin.connect(url(connection.stdin_port));
    this.iopub.connect(url(connection.iopub_port));
    this.iopub.subscribe();
    this.exited = new Promise((resolve) => {
      process.on('exit', (code, signal) => {
        this.exitInfo = signal ? `killed by ${signal}` : `exit code ${code}`;
        resolve(this.exitInfo);
      });
      process.on('error', (e) => {
        this.exitInfo = `could not start: ${e.message}`;
        resolve(this.exitInfo);
      });
    });
    for (const [sock, onMessage] of [
      [this.shell, (m: KernelMessage) => this.dispatch(this.replies, m)],
      [this.control, (m: KernelMessage) => this.dispatch(this.replies, m)],
      [this.iopub, (m: KernelMessage) => this.dispatch(this.iopubHandlers, m)],
      [this.stdin, (m: KernelMessage) => this.answerInput(m)],
    ] as const) {
      void this.receive(sock, onMessage);
    }
  }

  /** Starts a tslab kernel and waits until it answers; throws with what it printed when it cannot. */
  static async start(opts: StartKernelOptions): Promise<KernelClient> {
    const connection = await newConnectionInfo();
    fs.mkdirSync(opts.runtimeDir, { recursive: true });
    const connectionFile = path.join(opts.runtimeDir, `kernel-${crypto.randomUUID()}.json`);
    fs.writeFileSync(connectionFile, JSON.stringify(connection, null, 1), { mode: 0o600 });
    // Its own process group (as jupyter_client starts kernels): a terminal's Ctrl-C reaches us, and
    // we decide what the kernel gets (one SIGINT = Kernel -> Interrupt).
    const child = spawn(process.execPath, [tslabLauncher(), 'kernel', '--config-path', connectionFile], {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const client = new KernelClient(connection, connectionFile, child, opts.interruptMode ?? 'signal');
    const killOnExit = () => client.kill();
    process.on('exit', killOnExit);
    void client.exited.then(() => process.off('exit', killOnExit));
    for (const stream of [child.stdout, child.stderr]) {
      stream?.setEncoding('utf8');
      stream?.on('data', (text: string) => {
        client.processOutputTail = (client.processOutputTail + text).slice(-8000);
        opts.onProcessOutput?.(text);
      });
    }
    try {
      await client.waitForReady((opts.startupTimeoutSeconds ?? 120) * 1000);
    } catch (e) {
      await client.shutdown(0);
      throw e;
    }
    return client;
  }

  get alive(): boolean {
    return this.exitInfo === null;
  }

  private async receive(sock: zmq.Dealer | zmq.Subscriber, onMessage: (m: KernelMessage) => void): Promise<void> {
    try {
      for await (const frames of sock) {
        let msg: KernelMessage;
        try {
          msg = decodeMessage(this.connection.key, frames);
        } catch {
          this.badSignatures++;
          continue;
        }
        onMessage(msg);
      }
    } catch (e) {
      if (!this.closed) throw e;
    }
  }

  private dispatch(handlers: Map<string, Waiter>, msg: KernelMessage): void {
    const parent = msg.parent_header?.msg_id;
    if (parent) handlers.get(parent)?.(msg);
  }

  /** tslab never asks for input; a kernel that does gets an empty answer rather than a hang. */
  private answerInput(msg: KernelMessage): void {
    if (msg.header.msg_type === 'input_request') void this.send(this.stdin, 'input_reply', { value: '' }, msg.header);
  }

  private header(msgType: string): MessageHeader {
    return { msg_id: crypto.randomUUID(), msg_type: msgType, session: this.session, username: 'tlwb', date: new Date().toISOString(), version: PROTOCOL_VERSION };
  }

  private async send(sock: zmq.Dealer, msgType: string, content: Record<string, unknown>, parent: Partial<MessageHeader> = {}, header = this.header(msgType)): Promise<string> {
    await sock.send(encodeMessage(this.connection.key, { header, parent_header: parent, metadata: {}, content }));
    return header.msg_id;
  }

  /** Resolves with the reply to msgId, or null after ms or when the kernel exits. Register before sending. */
  private waitReply(msgId: string, ms: number | null): Promise<KernelMessage | null> {
    return new Promise((resolve) => {
      const timer = ms === null ? null : setTimeout(() => done(null), ms);
      const done = (m: KernelMessage | null) => {
        if (timer) clearTimeout(timer);
        this.replies.delete(msgId);
        resolve(m);
      };
      this.replies.set(msgId, done);
      void this.exited.then(() => done(null));
    });
  }

  /**
   * Ready when the kernel has answered kernel_info on shell and we have seen it publish on iopub: a
   * subscription takes a moment to be in place, and output sent before that would be lost.
   */
  private async waitForReady(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    const fail = (why: string) =>
      new Error(`the tslab kernel did not start (${why})${this.processOutputTail.trim() ? `:\n${this.processOutputTail.trim()}` : ''}`);
    // tslab binds its five sockets concurrently and handles a shell message as soon as shell is bound:
    // its reply publishes a status on iopub, and zeromq refuses a send on a socket whose bind is still
    // pending (EBUSY), which leaves the kernel alive but deaf. So: nothing is sent before every port listens.
    const c = this.connection;
    for (const port of [c.iopub_port, c.shell_port, c.control_port, c.stdin_port, c.hb_port]) {
      while (!(await listening(c.ip, port))) {
        if (!this.alive) throw fail(this.exitInfo!);
        if (Date.now() > deadline) throw fail(`port ${port} not listening within ${ms / 1000} s`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    // The bind's promise settles just after the port listens.
    await new Promise((r) => setTimeout(r, 100));
    for (;;) {
      const header = this.header('kernel_info_request');
      const published = new Promise<boolean>((resolve) => {
        this.iopubHandlers.set(header.msg_id, () => resolve(true));
        void this.exited.then(() => resolve(false));
      });
      const replied = this.waitReply(header.msg_id, Math.max(0, deadline - Date.now()));
      await this.send(this.shell, header.msg_type, {}, {}, header);
      const reply = await replied;
      if (!reply) throw fail(this.exitInfo ?? `no answer within ${ms / 1000} s`);
      // The kernel is up; its status messages for this request reach us once the subscription is in place.
      let timer: NodeJS.Timeout | undefined;
      const seen = await Promise.race([published, new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 250)))]);
      clearTimeout(timer);
      this.iopubHandlers.delete(header.msg_id);
      if (seen) return;
      if (!this.alive) throw fail(this.exitInfo!);
      if (Date.now() > deadline) throw fail(`its iopub channel stayed silent for ${ms / 1000} s`);
    }
  }

  /**
   * Runs code; onIopub gets every iopub message of this request as it arrives. Resolves when the
   * reply and the kernel's idle status have both arrived, or the time ran out, or the kernel died.
   */
  async execute(code: string, onIopub: (msg: KernelMessage) => void, timeoutSeconds: number | null = null): Promise<ExecuteResult> {
    const header = this.header('execute_request');
    const content = { code, silent: false, store_history: true, user_expressions: {}, allow_stdin: false, stop_on_error: true };
    let idle!: () => void;
    const idleSeen = new Promise<void>((resolve) => (idle = resolve));
    this.iopubHandlers.set(header.msg_id, (msg) => {
      onIopub(msg);
      if (msg.header.msg_type === 'status' && msg.content.execution_state === 'idle') idle();
    });
    const replied = this.waitReply(header.msg_id, null);
    await this.shell.send(encodeMessage(this.connection.key, { header, parent_header: {}, metadata: {}, content }));
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      (async () => {
        const reply = await replied;
        if (!reply) return { reply: null, timedOut: false, died: this.exitInfo ?? 'the kernel went away' };
        // Output is published before the idle status; the reply may overtake it on another socket.
        await Promise.race([idleSeen, this.exited, new Promise((r) => setTimeout(r, 10_000))]);
        return { reply, timedOut: false };
      })(),
      this.exited.then((why) => ({ reply: null, timedOut: false, died: why })),
      ...(timeoutSeconds === null ? [] : [new Promise<ExecuteResult>((resolve) => (timer = setTimeout(() => resolve({ reply: null, timedOut: true }), timeoutSeconds * 1000)))]),
    ]);
    if (timer) clearTimeout(timer);
    this.iopubHandlers.delete(header.msg_id);
    this.replies.delete(header.msg_id);
    return outcome;
  }

  /** Kernel -> Interrupt: SIGINT to the kernel process (tslab), or interrupt_request on control. */
  async interrupt(): Promise<void> {
    if (!this.alive) return;
    if (this.interruptMode === 'message') {
      await this.send(this.control, 'interrupt_request', {});
      return;
    }
    this.process.kill('SIGINT');
  }

  /** Kills the kernel process at once (a second Ctrl-C, or a timeout). */
  kill(): void {
    if (this.alive && this.process.pid !== undefined) {
      try {
        this.process.kill('SIGKILL');
      } catch {
        /* gone meanwhile */
      }
    }
  }

  /**
   * shutdown_request on control, then waits up to graceSeconds for the process to end and kills it
   * if it has not; closes our sockets and removes the connection file.
   */
  async shutdown(graceSeconds = 5): Promise<void> {
    if (this.alive && graceSeconds > 0) {
      try {
        await this.send(this.control, 'shutdown_request', { restart: false });
      } catch {
        /* the socket is gone: kill below */
      }
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.exited, new Promise((r) => (timer = setTimeout(r, graceSeconds * 1000)))]);
      clearTimeout(timer);
    }
    if (this.alive) {
      this.kill();
      await this.exited;
    }
    this.closed = true;
    for (const s of [this.shell, this.control, this.stdin, this.iopub]) s.close();
    fs.rmSync(this.connectionFile, { force: true });
  }
}
