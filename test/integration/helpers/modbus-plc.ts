// The test PLC: test/fixtures/modbus_plc.py (pymodbus's Modbus TCP server) on a fixed loopback port, recording every
// write it receives with the server's own clock. stop/start keep the port so a test can take the PLC away.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { FIXTURES, VENV_PYTHON, freePort } from './env';
import { Proc } from './proc';
import { waitFor } from './wait';

export interface PlcWrite {
  t: number;          // epoch ms when the server handled the request
  fc: number;         // 5 = write single coil, 6 = write single register
  address: number;    // 0-based protocol address
  values: number[];
  /** false: handled after the client had reset or closed the connection (a write it had given up on). */
  open: boolean | null;
  peer: number | null; // the client's TCP port
  generation: number; // which start() of the server saw it
}

export interface Pulse { on: number; off: number | null }

/** false when usable, else why not (node:test skip reason). */
export function missingPymodbus(): string | false {
  const r = spawnSync(VENV_PYTHON, ['-c', 'import pymodbus'], { stdio: 'ignore', timeout: 20000 });
  if (r.status === 0) return false;
  const msg = `SKIPPED: pymodbus missing in ${VENV_PYTHON} (scripts/install-deps.sh all)`;
  process.stderr.write(`# ${msg}\n`);
  return msg;
}

export class ModbusPlc {
  port = 0;
  proc: Proc | null = null;
  readonly writes: PlcWrite[] = [];
  private generation = 0;

  constructor(private readonly registers: Record<number, number> = {}) {}

  async start(): Promise<this> {
    if (!this.port) this.port = await freePort();
    const gen = ++this.generation;
    const args = [join(FIXTURES, 'modbus_plc.py'), '--port', String(this.port)];
    for (const [a, v] of Object.entries(this.registers)) args.push('--register', `${a}=${v}`);
    const p = new Proc(`plc#${gen}`, VENV_PYTHON, args);
    this.proc = p;
    p.onOutput((line, stream) => {
      if (stream !== 'stdout' || !line.startsWith('{"t"')) return;
      this.writes.push({ ...(JSON.parse(line) as Omit<PlcWrite, 'generation'>), generation: gen });
    });
    await p.waitLine(/"listening"/, 30000);
    return this;
  }

  /** A PLC that crashed or lost power: no goodbye on the wire. */
  async kill(): Promise<void> {
    if (this.proc) {
      this.proc.signal('SIGKILL');
      await this.proc.waitExit(5000);
    }
    this.proc = null;
  }

  /** A hung PLC: the process stops, its kernel still accepts connections and buffers what they send. */
  pause(): void {
    this.proc?.signal('SIGSTOP');
  }

  resume(): void {
    this.proc?.signal('SIGCONT');
  }

  async stop(): Promise<void> {
    this.resume();
    if (this.proc) await this.proc.stop(3000);
    this.proc = null;
  }

  coilWrites(address: number): PlcWrite[] {
    return this.writes.filter((w) => w.fc === 5 && w.address === address);
  }

  /** OFF->ON edges of a coil, each with the OFF that ended it (null while still ON). */
  pulses(address: number): Pulse[] {
    const out: Pulse[] = [];
    let high = false;
    for (const w of this.coilWrites(address)) {
      const v = w.values[0] === 1;
      if (v && !high) out.push({ on: w.t, off: null });
      else if (!v && high) out[out.length - 1].off = w.t;
      high = v;
    }
    return out;
  }

  registerWrites(address: number): PlcWrite[] {
    return this.writes.filter((w) => w.fc === 6 && w.address === address);
  }

  waitPulses(address: number, n: number, timeoutMs: number, since = 0): Promise<Pulse[]> {
    return waitFor(`${n} complete pulses on coil ${address}`, () => {
      const ps = this.pulses(address).filter((p) => p.on >= since && p.off !== null);
      return ps.length >= n ? ps : undefined;
    }, timeoutMs);
  }
}
