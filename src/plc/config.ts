/**
 * Configuration of the PLC / SCADA outputs (docs/sparkplug.md): the `sparkplug` and `modbus` blocks of the convict schema,
 * their formats and cross-checks. Kept apart from src/config/schema.ts, which only includes them.
 */
import convict from 'convict';
import { addJsonArrayFormat } from '../config/formats';
import { hostname } from 'node:os';
import { validateModbusHeartbeats, validateModbusOutputs } from '../modbus/config';
import type { HeartbeatConfig } from '../modbus/heartbeat';
import type { RejectOutputConfig } from '../modbus/reject-output';
import { SPARKPLUG_ID } from '../sparkplug/topics';

export interface SparkplugConfig {
  enabled: boolean;
  groupId: string;
  edgeNodeId: string;
  /** '' = no primary host application. */
  primaryHostId: string;
  /** 0 = one DDATA per result. */
  dataPeriodMs: number;
  /** '' = mqtt.clientId + "-spb". */
  clientId: string;
}

export interface ModbusConfig {
  outputs: RejectOutputConfig[];
  heartbeats: HeartbeatConfig[];
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
}

export interface PlcConfig {
  sparkplug: SparkplugConfig;
  modbus: ModbusConfig;
}

export function addPlcFormats(): void {
  const idRule = 'a single topic level: 1-128 characters, no "/", "+" or "#"';
  convict.addFormat({
    name: 'sparkplug-id',
    validate(v: unknown) {
      if (typeof v !== 'string' || !SPARKPLUG_ID.test(v)) throw new Error(`must be ${idRule}`);
    },
  });
  convict.addFormat({
    name: 'sparkplug-id-or-empty',
    validate(v: unknown) {
      if (typeof v !== 'string' || (v !== '' && !SPARKPLUG_ID.test(v))) throw new Error(`must be "" (none) or ${idRule}`);
    },
  });
  // Per-item checks (and that each camera exists) happen in validatePlcConfig.
  addJsonArrayFormat('modbus-outputs', '{camera, host, type, address, ...}');
  addJsonArrayFormat('modbus-heartbeats', '{host, type, address, periodMs?, ...}');
}

export function plcSchema() {
  return {
    sparkplug: {
      enabled: { doc: 'Publish a Sparkplug B 3.0 edge node (docs/sparkplug.md) beside the JSON topics', format: 'strict-boolean', default: false, env: 'ETSTPM_SPARKPLUG_ENABLED' },
      groupId: { doc: 'Sparkplug group id', format: 'sparkplug-id', default: 'etstpm', env: 'ETSTPM_SPARKPLUG_GROUP_ID' },
      edgeNodeId: { doc: 'Sparkplug edge node id (the daemon; each camera is a device)', format: 'sparkplug-id', default: hostname().replace(/[/+#]/g, '_') || 'etstpm-edge', env: 'ETSTPM_SPARKPLUG_EDGE_NODE_ID' },
      primaryHostId: { doc: 'Primary host application id: publish only while its STATE is online ("" = none)', format: 'sparkplug-id-or-empty', default: '' },
      dataPeriodMs: { doc: 'DDATA at most once per camera per period, latest values (0 = one per result)', format: 'non-negative-int', default: 0 },
      clientId: { doc: 'MQTT client id of the edge node ("" = mqtt.clientId + "-spb")', format: String, default: '' },
    },
    modbus: {
      outputs: {
        doc: 'Modbus TCP reject outputs: [{camera, host, port?, unitId?, type: "coil"|"register", address, pulseMs?, gapMs?}]',
        format: 'modbus-outputs',
        default: [] as unknown[],
        env: 'ETSTPM_MODBUS_OUTPUTS',
      },
      heartbeats: {
        doc: 'Modbus TCP heartbeats, a coil toggled or a register counted up while the inspection is alive: [{host, port?, unitId?, type: "coil"|"register", address, periodMs?, staleMs?, cameras?}]',
        format: 'modbus-heartbeats',
        default: [] as unknown[],
        env: 'ETSTPM_MODBUS_HEARTBEATS',
      },
      connectTimeoutMs: { doc: 'Timeout of one connection attempt to a PLC', format: 'positive-int', default: 3000 },
      requestTimeoutMs: { doc: 'Longest wait for a PLC answer (never past the reject deadline); also the deadline of coil OFF, reset and heartbeat writes', format: 'positive-int', default: 1000 },
      reconnectMinMs: { doc: 'First PLC reconnect delay', format: 'positive-int', default: 500 },
      reconnectMaxMs: { doc: 'Largest PLC reconnect delay (exponential backoff)', format: 'positive-int', default: 10000 },
    },
  };
}

/** Checks that need more than one key. Returns the normalised outputs (defaults filled in) and every problem. */
export function validatePlcConfig(
  c: Partial<PlcConfig>,
  cameraIds: readonly string[],
): { modbusOutputs: RejectOutputConfig[]; modbusHeartbeats: HeartbeatConfig[]; errors: string[] } {
  const errors: string[] = [];
  let modbusOutputs: RejectOutputConfig[] = [];
  let modbusHeartbeats: HeartbeatConfig[] = [];
  const m = c.modbus;
  if (m && Array.isArray(m.outputs)) {
    const v = validateModbusOutputs(m.outputs, cameraIds);
    errors.push(...v.errors);
    modbusOutputs = v.outputs;
  }
  if (m && Array.isArray(m.heartbeats)) {
    const v = validateModbusHeartbeats(m.heartbeats, cameraIds, modbusOutputs);
    errors.push(...v.errors);
    modbusHeartbeats = v.heartbeats;
  }
  if (m && Number.isInteger(m.reconnectMinMs) && m.reconnectMaxMs < m.reconnectMinMs) {
    errors.push('modbus.reconnectMaxMs: must be >= modbus.reconnectMinMs');
  }
  return { modbusOutputs, modbusHeartbeats, errors };
}
