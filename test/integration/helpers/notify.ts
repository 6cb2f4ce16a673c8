// A real unix datagram socket standing in for systemd's NOTIFY_SOCKET (test/fixtures/notify_listener.py): the daemon
// sends sd_notify datagrams to it exactly as it would to systemd; tests read READY=1, WATCHDOG=1, STATUS=... back.
import { join } from 'node:path';
import { FIXTURES } from './env';
import { Proc } from './proc';

export interface Notification { t: number; msg: string; }

export class NotifyListener {
  proc!: Proc;
  readonly messages: Notification[] = [];

  constructor(readonly socketPath: string, private readonly python = process.env.ETSTPM_NOTIFY_PYTHON ?? 'python3') {}

  async start(): Promise<this> {
    this.proc = new Proc('notify', this.python, [join(FIXTURES, 'notify_listener.py'), this.socketPath]);
    this.proc.onOutput((line, stream) => {
      if (stream === 'stdout' && line.startsWith('{')) this.messages.push(JSON.parse(line) as Notification);
    });
    await this.proc.waitLine(/^LISTENING /, 10000);
    return this;
  }

  stop(): Promise<unknown> { return this.proc.stop(); }

  /** Every `KEY=value` assignment received (datagrams split into lines), with arrival times. */
  assignments(since = 0): Array<{ t: number; key: string; value: string }> {
    const out: Array<{ t: number; key: string; value: string }> = [];
    for (const m of this.messages) {
      if (m.t < since) continue;
      for (const line of m.msg.split('\n')) {
        const i = line.indexOf('=');
        if (i > 0) out.push({ t: m.t, key: line.slice(0, i), value: line.slice(i + 1) });
      }
    }
    return out;
  }

  times(key: string, value?: string, since = 0): number[] {
    return this.assignments(since).filter((a) => a.key === key && (value === undefined || a.value === value)).map((a) => a.t);
  }
}
