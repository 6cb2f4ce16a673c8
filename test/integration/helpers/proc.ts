// Child processes for tests: line-buffered output capture, waits on output lines and exit, and a registry that
// kills whatever a test left running (also when the test process itself exits).
import { ChildProcess, spawn, SpawnOptions } from 'node:child_process';
import { waitFor } from './wait';

const live = new Set<ChildProcess>();
function killAll(): void {
  for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}
process.on('exit', killAll);
// The test runner stops a file that runs too long with a signal: take the brokers, cameras and daemons along.
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  process.once(sig, () => {
    killAll();
    process.exit(128 + ({ SIGTERM: 15, SIGINT: 2, SIGHUP: 1 } as const)[sig]);
  });
}

export interface Exit { code: number | null; signal: NodeJS.Signals | null }

export class Proc {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];
  exit: Exit | null = null;
  private readonly exited: Promise<Exit>;
  private readonly listeners: Array<(line: string, stream: 'stdout' | 'stderr') => void> = [];

  constructor(readonly name: string, cmd: string, args: string[], opts: SpawnOptions = {}, readonly echo = false) {
    this.child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    live.add(this.child);
    for (const stream of ['stdout', 'stderr'] as const) {
      let buf = '';
      this.child[stream]!.setEncoding('utf8');
      this.child[stream]!.on('data', (chunk: string) => {
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          this.onLine(buf.slice(0, i), stream);
          buf = buf.slice(i + 1);
        }
      });
      this.child[stream]!.on('end', () => { if (buf) this.onLine(buf, stream); buf = ''; });
    }
    this.exited = new Promise((res) => {
      this.child.on('error', (err) => {
        this.onLine(`spawn error: ${err.message}`, 'stderr');
        this.exit = { code: -1, signal: null };
        live.delete(this.child);
        res(this.exit);
      });
      this.child.on('close', (code, signal) => {
        this.exit = { code, signal };
        live.delete(this.child);
        res(this.exit);
      });
    });
  }

  private onLine(line: string, stream: 'stdout' | 'stderr'): void {
    this.lines.push(line);
    (stream === 'stdout' ? this.stdout : this.stderr).push(line);
    if (this.echo || process.env.ETSTPM_IT_VERBOSE) process.stderr.write(`# [${this.name}] ${line}\n`);
    for (const l of this.listeners) l(line, stream);
  }

  onOutput(fn: (line: string, stream: 'stdout' | 'stderr') => void): void {
    this.listeners.push(fn);
  }

  get pid(): number | undefined { return this.child.pid; }
  get running(): boolean { return this.exit === null; }

  waitLine(re: RegExp, timeoutMs: number, from = 0): Promise<string> {
    return waitFor(`${this.name} output matching ${re}`, () => {
      if (this.exit && !this.lines.slice(from).some((l) => re.test(l))) {
        throw new Error(`${this.name} exited (${JSON.stringify(this.exit)}); output tail:\n${this.tail()}`);
      }
      return this.lines.slice(from).find((l) => re.test(l));
    }, timeoutMs);
  }

  waitExit(timeoutMs: number): Promise<Exit> {
    return Promise.race([
      this.exited,
      new Promise<Exit>((_, rej) => setTimeout(() => rej(new Error(
        `${this.name} did not exit within ${timeoutMs} ms; output tail:\n${this.tail()}`)), timeoutMs).unref()),
    ]);
  }

  signal(sig: NodeJS.Signals): void {
    if (this.running) this.child.kill(sig);
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  async stop(graceMs = 3000): Promise<Exit> {
    if (!this.running) return this.exit!;
    this.child.kill('SIGTERM');
    try {
      return await this.waitExit(graceMs);
    } catch {
      this.child.kill('SIGKILL');
      return this.exited;
    }
  }

  tail(n = 40): string {
    return this.lines.slice(-n).join('\n');
  }
}
