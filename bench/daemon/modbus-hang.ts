// How often a PLC that hangs at a random moment still executes a write the daemon gave up on (docs/sparkplug.md,
// "Never late": the one-round-trip window no client can close), with the daemon's own Modbus code.
//
//   node dist/bench/daemon/modbus-hang.js [--hangs 30] [--seed 1] [--no-read-first] [--out bench/results/modbus-hang.json]
//
// The real ModbusLink, RejectOutput and ModbusHeartbeat (src/modbus/) in this process against the test PLC
// (test/fixtures/modbus_plc.py, pymodbus, which logs every write with whether the client still held its connection).
// A reject every 200 ms (deadline 500 ms, coil pulse 100 ms, gap 30 ms) and a coil heartbeat every 250 ms run all
// along; `--hangs` times the PLC is stopped (SIGSTOP) at a uniformly random moment for 0.7-1.5 s (longer than every
// deadline) and resumed (SIGCONT), then the run waits until the link is up again. Counted from the PLC's log:
// abandoned writes it executed (connection already reset or closed), ON edges outside every reject's
// issue..deadline window, ON writes against rejects counted as written. `--no-read-first` replaces the link's write
// (read, then write once the read is answered) by a bare write with the same deadline and reset, for comparison.
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { createLogger } from '../../src/log';
import { ModbusHeartbeat } from '../../src/modbus/heartbeat';
import { ModbusClient, ModbusLink, ModbusTarget } from '../../src/modbus/link';
import { RejectOutput, RejectRequest } from '../../src/modbus/reject-output';
import { ModbusPlc } from '../../test/integration/helpers/modbus-plc';
import { waitFor } from '../../test/integration/helpers/wait';
import { mulberry32 } from '../../src/sources/synthetic/rng';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const hangs = Number(arg('hangs', '30'));
  const seed = Number(arg('seed', '1'));
  const out = arg('out', '');
  const readFirst = !process.argv.includes('--no-read-first');
  const rand = mulberry32(seed);
  const log = createLogger('silent');
  const plc = await new ModbusPlc().start();
  const link = new ModbusLink({ host: '127.0.0.1', port: plc.port, connectTimeoutMs: 1000, requestTimeoutMs: 300, reconnectMinMs: 100, reconnectMaxMs: 1000 }, log);
  if (!readFirst) {
    const turn = (link as unknown as { turn: (u: number, d: number, fn: (c: ModbusClient) => Promise<unknown>) => Promise<void> }).turn.bind(link);
    link.write = (t: ModbusTarget, value: number, deadline: number) =>
      turn(t.unitId, deadline, (c) => (t.type === 'coil' ? c.writeCoil(t.address, value !== 0) : c.writeRegister(t.address, value)));
  }
  let written = 0;
  let dropped = 0;
  const rejects: RejectRequest[] = [];
  const output = new RejectOutput(
    { camera: 'cam', host: '127.0.0.1', port: plc.port, unitId: 1, type: 'coil', address: 0, pulseMs: 100, gapMs: 30 },
    link,
    { written: () => written++, dropped: () => dropped++ },
    log,
  );
  const heartbeat = new ModbusHeartbeat(
    { host: '127.0.0.1', port: plc.port, unitId: 1, type: 'coil', address: 1, periodMs: 250, staleMs: null, cameras: null },
    link, () => null, () => undefined, log,
  );
  link.start();
  heartbeat.start();
  let seq = 0;
  const ticker = setInterval(() => {
    const now = Date.now();
    const r = { frameSeq: seq++, capturedAt: now, deadline: now + 500 };
    rejects.push(r);
    output.reject(r);
  }, 200);
  await waitFor('link up', () => link.state === 'up', 30000);
  const started = Date.now();
  for (let i = 0; i < hangs; i++) {
    await sleep(300 + rand() * 1200);
    plc.pause();
    await sleep(700 + rand() * 800);
    plc.resume();
    await waitFor('link up again', () => link.state === 'up', 30000);
  }
  await sleep(1000);
  clearInterval(ticker);
  heartbeat.close();
  await output.close();
  await link.close();
  await sleep(300);
  await plc.stop();

  const stale = plc.writes.filter((w) => w.open !== true);
  const ons = plc.writes.filter((w) => w.fc === 5 && w.address === 0 && w.values[0] === 1);
  const outside = ons.filter((w) => !rejects.some((r) => w.t >= r.capturedAt && w.t <= r.deadline));
  const result = {
    command: `node dist/bench/daemon/modbus-hang.js --hangs ${hangs} --seed ${seed}${readFirst ? '' : ' --no-read-first'}`,
    readFirst,
    when: new Date().toISOString(),
    machine: { cpus: cpus().length, loadavg1: loadavg()[0] },
    wallS: Math.round((Date.now() - started) / 100) / 10,
    hangs,
    rejects: rejects.length,
    rejectsWritten: written,
    rejectsDropped: dropped,
    plcWrites: plc.writes.length,
    abandonedWritesExecuted: stale.length,
    abandonedWrites: stale.map((w) => ({ t: Math.round(w.t), address: w.address, value: w.values[0] })),
    onWritesAtPlc: ons.length,
    onEdgesOutsideDeadline: outside.length,
    heartbeatWrites: heartbeat.written,
    reconnects: link.connects - 1,
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  if (out) writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
}

main().catch((err: Error) => {
  process.stderr.write(`${err.stack ?? err.message}\n`);
  process.exit(1);
});
