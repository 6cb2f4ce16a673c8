import assert from 'node:assert/strict';
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { SystemdNotifier } from '../../src/systemd/notify';
import { captureLog, silentLog, until } from './helpers';

// A real AF_UNIX SOCK_DGRAM listener in another process (Python's socket module), like systemd's notify socket.
const LISTENER = `
import json, os, socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
print("listening", flush=True)
while True:
    data, _ = s.recvfrom(65536)
    print(json.dumps(data.decode()), flush=True)
`;

const python = ['python3', '/usr/bin/python3'].find((p) => spawnSync(p, ['-c', 'import socket'], { stdio: 'ignore' }).status === 0);

describe('systemd notify against a real unix datagram socket', { skip: python ? false : 'no python3 to run the listening socket' }, () => {
  let listener: ChildProcess;
  const received: string[] = [];
  let path = '';

  before(async () => {
    path = join(mkdtempSync(join(tmpdir(), 'etstpm-notify-')), 'notify.sock');
    listener = spawn(python as string, ['-c', LISTENER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
    let ready = false;
    createInterface({ input: listener.stdout! }).on('line', (l) => {
      if (l === 'listening') ready = true;
      else received.push(JSON.parse(l) as string);
    });
    await until(() => ready, 5000, 'python listener');
  });

  after(() => {
    listener.kill();
  });

  it('sends READY=1 with STATUS and MAINPID, and STOPPING=1', async () => {
    const n = new SystemdNotifier({ NOTIFY_SOCKET: path }, silentLog());
    assert.equal(n.enabled, true);
    assert.equal(n.watchdogIntervalMs, null);
    assert.equal(await n.ready('cameras 1/1 streaming\nsecond line'), true);
    await until(() => received.length >= 1, 3000, 'READY datagram');
    assert.equal(received.shift(), `READY=1\nSTATUS=cameras 1/1 streaming second line\nMAINPID=${process.pid}`);
    await n.stopping();
    await until(() => received.length >= 1, 3000, 'STOPPING datagram');
    assert.equal(received.shift(), 'STOPPING=1\nSTATUS=stopping');
    n.close();
  });

  it('pings WATCHDOG=1 every WATCHDOG_USEC/2 only while healthy', async () => {
    received.length = 0;
    const cap = captureLog();
    const n = new SystemdNotifier({ NOTIFY_SOCKET: path, WATCHDOG_USEC: '100000', WATCHDOG_PID: String(process.pid) }, cap.log);
    assert.equal(n.watchdogIntervalMs, 50);
    let healthy = true;
    n.startWatchdog(() => (healthy ? { ok: true } : { ok: false, reason: 'no frame processed for 6000 ms' }));
    await until(() => received.filter((m) => m === 'WATCHDOG=1').length >= 3, 3000, 'three pings');
    healthy = false;
    await new Promise((r) => setTimeout(r, 120)); // let a ping already sent arrive
    const frozen = received.length;
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(received.length, frozen, 'pings continued while the pipeline was not processing');
    assert.ok(cap.messages().includes('watchdog ping withheld: pipeline not processing frames'));
    healthy = true;
    await until(() => received.length > frozen, 3000, 'pings to resume');
    n.close();
  });

  it('does nothing without NOTIFY_SOCKET, with a relative one, or for another WATCHDOG_PID', async () => {
    assert.equal(new SystemdNotifier({}, silentLog()).enabled, false);
    assert.equal(await new SystemdNotifier({}, silentLog()).ready('x'), false);
    assert.equal(new SystemdNotifier({ NOTIFY_SOCKET: 'relative.sock' }, silentLog()).enabled, false);
    const other = new SystemdNotifier({ NOTIFY_SOCKET: path, WATCHDOG_USEC: '100000', WATCHDOG_PID: '1' }, silentLog());
    assert.equal(other.watchdogIntervalMs, null);
    other.close();
  });

  it('reaches an abstract socket (@name) through the relay', async () => {
    const name = `etstpm-unit-${process.pid}`;
    const abs = spawn(python as string, ['-c', LISTENER.replace('s.bind(path)', 's.bind("\\0" + path)'), name], { stdio: ['ignore', 'pipe', 'inherit'] });
    const got: string[] = [];
    let ready = false;
    createInterface({ input: abs.stdout! }).on('line', (l) => (l === 'listening' ? (ready = true) : got.push(JSON.parse(l) as string)));
    try {
      await until(() => ready, 5000, 'abstract listener');
      const n = new SystemdNotifier({ NOTIFY_SOCKET: `@${name}` }, silentLog());
      assert.equal(n.enabled, true);
      await n.ready('abstract ok');
      await until(() => got.length >= 1, 5000, 'READY on the abstract socket');
      assert.equal(got[0], `READY=1\nSTATUS=abstract ok\nMAINPID=${process.pid}`);
      n.close();
    } finally {
      abs.kill();
    }
  });
});
