/** Deep validation of `modbus.outputs` and `modbus.heartbeats`: one message per problem, naming the index and key. */
import type { HeartbeatConfig } from './heartbeat';
import type { RejectOutputConfig } from './reject-output';

const KEYS = ['camera', 'host', 'port', 'unitId', 'type', 'address', 'pulseMs', 'gapMs'] as const;
const HOST = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$|^\[?[0-9A-Fa-f:.]+\]?$/;

export interface OutputsValidation {
  outputs: RejectOutputConfig[];
  errors: string[];
}

function int(v: unknown, key: string, min: number, max: number, errors: string[]): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    errors.push(`${key}: must be an integer between ${min} and ${max}`);
    return min;
  }
  return v;
}

/** Where a write goes: one coil or holding register of one unit of one PLC. */
interface PlcRegister {
  host: string;
  port: number;
  unitId: number;
  type: 'coil' | 'register';
  address: number;
}

/**
 * The keys reject outputs and heartbeats share (host, port?, unitId?, type, address): the register, or null after
 * pushing one message per bad key. `typeUse` says what the type does for this kind of entry.
 */
function plcRegister(o: Record<string, unknown>, key: string, typeUse: string, errors: string[]): PlcRegister | null {
  const before = errors.length;
  const host = o.host;
  if (typeof host !== 'string' || !HOST.test(host)) errors.push(`${key}.host: must be a host name or IP address of the PLC`);
  const port = int(o.port ?? 502, `${key}.port`, 1, 65535, errors);
  // Unit 0 is broadcast on serial lines; Modbus TCP servers answer 1-247 (255 on many gateways).
  const unitId = int(o.unitId ?? 1, `${key}.unitId`, 0, 255, errors);
  const type = o.type;
  if (type !== 'coil' && type !== 'register') errors.push(`${key}.type: must be ${typeUse}`);
  const address = int(o.address, `${key}.address`, 0, 65535, errors);
  return errors.length === before ? { host: host as string, port, unitId, type: type as PlcRegister['type'], address } : null;
}

/** The identity two entries must not share. */
const registerId = (r: PlcRegister): string => `${r.host}:${r.port}/${r.unitId}/${r.type}/${r.address}`;

/** `cameraIds`: the configured cameras; an output for another id is a typo, not a feature. */
export function validateModbusOutputs(raw: unknown, cameraIds: readonly string[]): OutputsValidation {
  const errors: string[] = [];
  const outputs: RejectOutputConfig[] = [];
  if (!Array.isArray(raw)) return { outputs, errors: ['modbus.outputs: must be an array of {camera, host, type, address, ...}'] };
  const perCamera = new Set<string>();
  const targets = new Map<string, number>();
  raw.forEach((item: unknown, i: number) => {
    const key = `modbus.outputs[${i}]`;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      errors.push(`${key}: must be an object {camera, host, port?, unitId?, type, address, pulseMs?, gapMs?}`);
      return;
    }
    const o = item as Record<string, unknown>;
    const before = errors.length;
    for (const k of Object.keys(o)) {
      if (!(KEYS as readonly string[]).includes(k)) errors.push(`${key}.${k}: not a known key (expected ${KEYS.join(', ')})`);
    }
    const camera = o.camera;
    if (typeof camera !== 'string' || camera === '') errors.push(`${key}.camera: must be the id of a configured camera`);
    else if (!cameraIds.includes(camera)) errors.push(`${key}.camera: no camera with id "${camera}" (cameras: ${cameraIds.join(', ') || 'none'})`);
    else if (perCamera.has(camera)) errors.push(`${key}.camera: camera "${camera}" already has a Modbus output`);
    else perCamera.add(camera);
    const reg = plcRegister(o, key, '"coil" (pulse) or "register" (counter)', errors);
    const pulseMs = int(o.pulseMs ?? 200, `${key}.pulseMs`, 1, 60000, errors);
    const gapMs = int(o.gapMs ?? 50, `${key}.gapMs`, 0, 60000, errors);
    if (reg?.type === 'register' && (o.pulseMs !== undefined || o.gapMs !== undefined)) {
      errors.push(`${key}.pulseMs: only for type "coil" (a register output writes a counter, no pulse)`);
    }
    if (errors.length === before && reg) {
      const other = targets.get(registerId(reg));
      if (other !== undefined) {
        errors.push(`${key}.address: the same ${reg.type} ${reg.address} on ${reg.host}:${reg.port} unit ${reg.unitId} is already used by modbus.outputs[${other}]`);
        return;
      }
      targets.set(registerId(reg), i);
      outputs.push({ camera: camera as string, ...reg, pulseMs, gapMs });
    }
  });
  return { outputs, errors };
}

const HEARTBEAT_KEYS = ['host', 'port', 'unitId', 'type', 'address', 'periodMs', 'staleMs', 'cameras'] as const;

export interface HeartbeatsValidation {
  heartbeats: HeartbeatConfig[];
  errors: string[];
}

/**
 * Deep validation of `modbus.heartbeats` (docs/configuration.md): `outputs` are the already validated reject
 * outputs, whose coils and registers a heartbeat must not share.
 */
export function validateModbusHeartbeats(raw: unknown, cameraIds: readonly string[], outputs: readonly RejectOutputConfig[]): HeartbeatsValidation {
  const errors: string[] = [];
  const heartbeats: HeartbeatConfig[] = [];
  if (!Array.isArray(raw)) return { heartbeats, errors: ['modbus.heartbeats: must be an array of {host, type, address, periodMs?, ...}'] };
  const targets = new Map<string, string>();
  for (const [i, o] of outputs.entries()) targets.set(registerId(o), `modbus.outputs[${i}]`);
  raw.forEach((item: unknown, i: number) => {
    const key = `modbus.heartbeats[${i}]`;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      errors.push(`${key}: must be an object {host, port?, unitId?, type, address, periodMs?, staleMs?, cameras?}`);
      return;
    }
    const o = item as Record<string, unknown>;
    const before = errors.length;
    for (const k of Object.keys(o)) {
      if (!(HEARTBEAT_KEYS as readonly string[]).includes(k)) errors.push(`${key}.${k}: not a known key (expected ${HEARTBEAT_KEYS.join(', ')})`);
    }
    const reg = plcRegister(o, key, '"coil" (toggled) or "register" (counter)', errors);
    const periodMs = int(o.periodMs ?? 1000, `${key}.periodMs`, 50, 60000, errors);
    const staleMs = o.staleMs === undefined ? null : int(o.staleMs, `${key}.staleMs`, 1, 3600000, errors);
    let cameras: string[] | null = null;
    if (o.cameras !== undefined) {
      if (!Array.isArray(o.cameras) || o.cameras.length === 0 || !o.cameras.every((c) => typeof c === 'string')) {
        errors.push(`${key}.cameras: must be a non-empty array of camera ids (leave it out to watch every camera)`);
      } else {
        cameras = o.cameras as string[];
        for (const c of cameras) if (!cameraIds.includes(c)) errors.push(`${key}.cameras: no camera with id "${c}" (cameras: ${cameraIds.join(', ') || 'none'})`);
      }
    }
    if (errors.length !== before || !reg) return;
    const other = targets.get(registerId(reg));
    if (other !== undefined) {
      errors.push(`${key}.address: the same ${reg.type} ${reg.address} on ${reg.host}:${reg.port} unit ${reg.unitId} is already used by ${other}`);
      return;
    }
    targets.set(registerId(reg), key);
    heartbeats.push({ ...reg, periodMs, staleMs, cameras });
  });
  return { heartbeats, errors };
}
