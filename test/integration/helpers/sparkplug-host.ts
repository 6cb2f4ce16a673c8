// A Sparkplug B host application for tests, independent of the daemon's encoder: protobufjs with the spec's
// sparkplug_b.proto (vendored from Eclipse Tahu, test/fixtures/sparkplug) decodes everything under
// spBv1.0/<group>/#, resolves metric aliases from the births, and sends NCMD / STATE like a SCADA host would.
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { FIXTURES } from './env';
import { MqttCollector, Received } from './mqtt-collector';
import { waitFor } from './wait';

const root = protobuf.loadSync(join(FIXTURES, 'sparkplug', 'sparkplug_b.proto'));
const PayloadType = root.lookupType('org.eclipse.tahu.protobuf.Payload');
const DataType = root.lookupEnum('org.eclipse.tahu.protobuf.DataType');

export interface SpMetric {
  name?: string;
  alias?: number;
  datatype: string;   // DataType enum name (Double, UInt64, String, Boolean ...)
  value: unknown;     // from the value field the spec assigns to that datatype; null when is_null
  timestamp?: number;
}

export interface SpMessage {
  index: number;      // arrival order over all Sparkplug topics of the group
  topic: string;
  type: string;       // NBIRTH, NDEATH, NDATA, NCMD, DBIRTH, DDEATH, DDATA
  node: string;
  device?: string;
  t: number;
  timestamp?: number;
  seq?: number;
  metrics: SpMetric[];
}

/** The value field of each datatype (Sparkplug 3.0, 6.4.16): anything else set is a protocol error. */
function valueField(datatype: string): string {
  if (['Int8', 'Int16', 'Int32', 'UInt8', 'UInt16', 'UInt32'].includes(datatype)) return 'intValue';
  if (['Int64', 'UInt64', 'DateTime'].includes(datatype)) return 'longValue';
  if (datatype === 'Float') return 'floatValue';
  if (datatype === 'Double') return 'doubleValue';
  if (datatype === 'Boolean') return 'booleanValue';
  if (['String', 'Text', 'UUID'].includes(datatype)) return 'stringValue';
  if (datatype === 'Bytes' || datatype === 'File') return 'bytesValue';
  throw new Error(`test decoder: datatype ${datatype} not expected from this edge node`);
}

const VALUE_FIELDS = ['intValue', 'longValue', 'floatValue', 'doubleValue', 'booleanValue', 'stringValue', 'bytesValue', 'datasetValue', 'templateValue', 'extensionValue'];

export function decodeSparkplug(buf: Buffer): { timestamp?: number; seq?: number; metrics: SpMetric[] } {
  const o = PayloadType.toObject(PayloadType.decode(buf), { longs: Number, defaults: false }) as Record<string, any>;
  const metrics = ((o.metrics ?? []) as Record<string, any>[]).map((m): SpMetric => {
    const datatype = DataType.valuesById[m.datatype as number];
    if (!datatype) throw new Error(`metric ${m.name ?? m.alias}: no or unknown datatype ${m.datatype}`);
    const field = valueField(datatype);
    const set = VALUE_FIELDS.filter((f) => m[f] !== undefined);
    if (m.isNull) {
      if (set.length > 0) throw new Error(`metric ${m.name ?? m.alias}: is_null with a value (${set.join(',')})`);
    } else if (set.length !== 1 || set[0] !== field) {
      throw new Error(`metric ${m.name ?? m.alias}: datatype ${datatype} carries ${set.join(',') || 'no value'}, expected ${field}`);
    }
    return { name: m.name, alias: m.alias, datatype, value: m.isNull ? null : m[field], timestamp: m.timestamp };
  });
  return { timestamp: o.timestamp, seq: o.seq, metrics };
}

export function encodeSparkplug(p: { timestamp: number; seq?: number; metrics: { name: string; datatype: string; value: boolean | number | string }[] }): Buffer {
  const metrics = p.metrics.map((m) => ({ name: m.name, datatype: DataType.values[m.datatype], [valueField(m.datatype)]: m.value, timestamp: p.timestamp }));
  return Buffer.from(PayloadType.encode(PayloadType.fromObject({ timestamp: p.timestamp, seq: p.seq, metrics })).finish());
}

const live = new Set<SparkplugHost>();

/** For an after() hook: a failed test must not leave a reconnecting client that keeps the test process alive. */
export async function stopAllHosts(): Promise<void> {
  await Promise.all([...live].map((h) => h.stop()));
}

export class SparkplugHost {
  collector!: MqttCollector;
  readonly messages: SpMessage[] = [];
  readonly errors: string[] = [];
  private seen = 0;

  constructor(private readonly url: string, readonly group: string) {}

  async start(): Promise<this> {
    this.collector = new MqttCollector({ url: this.url, topics: [`spBv1.0/${this.group}/#`] });
    live.add(this);
    await this.collector.start();
    return this;
  }

  async stop(): Promise<void> {
    if (!live.delete(this)) return;
    if (this.collector.client) await this.collector.stop();
  }

  /** Decodes what arrived since the last call (cheap to call in every poll). */
  private sync(): void {
    const all = this.collector.messages;
    for (; this.seen < all.length; this.seen++) {
      const m: Received = all[this.seen];
      const parts = m.topic.split('/');
      if (parts[0] !== 'spBv1.0' || parts[1] !== this.group) continue;
      try {
        const d = decodeSparkplug(m.payload);
        this.messages.push({ index: this.messages.length, topic: m.topic, type: parts[2], node: parts[3], device: parts[4], t: m.t, ...d });
      } catch (e) {
        this.errors.push(`${m.topic}: ${(e as Error).message}`);
      }
    }
  }

  all(): SpMessage[] {
    this.sync();
    return this.messages;
  }

  of(type: string, device?: string, after = -1): SpMessage[] {
    return this.all().filter((m) => m.type === type && (device === undefined || m.device === device) && m.index > after);
  }

  waitFor(what: string, pred: (m: SpMessage) => boolean, timeoutMs: number, after = -1): Promise<SpMessage> {
    return waitFor(`Sparkplug ${what}`, () => this.all().find((m) => m.index > after && pred(m)), timeoutMs, 50);
  }

  async rebirth(node: string): Promise<void> {
    const payload = encodeSparkplug({ timestamp: Date.now(), metrics: [{ name: 'Node Control/Rebirth', datatype: 'Boolean', value: true }] });
    await this.collector.client.publishAsync(`spBv1.0/${this.group}/NCMD/${node}`, payload, { qos: 0 });
  }

  /** Sparkplug 3.0 primary host STATE (retained, QoS 1, JSON). */
  async state(hostId: string, online: boolean, timestamp = Date.now()): Promise<void> {
    await this.collector.client.publishAsync(`spBv1.0/STATE/${hostId}`, JSON.stringify({ online, timestamp }), { qos: 1, retain: true });
  }
}

export const metric = (m: SpMessage, name: string): SpMetric | undefined => m.metrics.find((x) => x.name === name);
