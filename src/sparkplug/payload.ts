/**
 * Sparkplug B payloads, encoded by Eclipse Tahu's `sparkplug-payload` package (the reference implementation's
 * JavaScript encoder, generated from the official sparkplug_b.proto; docs/decisions.md says why this one).
 * Only the handful of metric types this edge node uses are exposed, so call sites cannot pick a type whose value
 * field the encoder would fill differently.
 */
import { get as getSparkplug } from 'sparkplug-payload';

export type MetricType = 'UInt64' | 'Int64' | 'Double' | 'String' | 'Boolean';
export type MetricValue = number | string | boolean | null;

export interface Metric {
  /** Omitted in DATA messages: the alias from the birth identifies the metric. */
  name?: string;
  alias?: number;
  type: MetricType;
  value: MetricValue;
  timestamp?: number;
}

export interface Payload {
  timestamp: number;
  /** Absent on NDEATH (Sparkplug 3.0: the death certificate carries bdSeq only). */
  seq?: number;
  metrics: Metric[];
}

const codec = getSparkplug('spBv1.0');
if (!codec) throw new Error('sparkplug-payload does not provide the spBv1.0 codec');
const sp = codec;

export function encodePayload(p: Payload): Buffer {
  const metrics = p.metrics.map((m) => {
    const out: Record<string, unknown> = { type: m.type, value: m.value };
    if (m.name !== undefined) out.name = m.name;
    if (m.alias !== undefined) out.alias = m.alias;
    if (m.timestamp !== undefined) out.timestamp = m.timestamp;
    return out;
  });
  const obj: Record<string, unknown> = { timestamp: p.timestamp, metrics };
  if (p.seq !== undefined) obj.seq = p.seq;
  return Buffer.from(sp.encodePayload(obj as unknown as Parameters<typeof sp.encodePayload>[0]));
}

export interface DecodedMetric {
  name?: string;
  alias?: number;
  value: unknown;
  type: string;
}

/** Decodes an incoming command (NCMD); numbers of 64-bit fields come back as plain numbers. */
export function decodePayload(buf: Uint8Array): { timestamp?: number; seq?: number; metrics: DecodedMetric[] } {
  const d = sp.decodePayload(buf);
  const num = (v: unknown): number | undefined => (v === undefined || v === null ? undefined : Number(v));
  return {
    timestamp: num(d.timestamp),
    seq: num(d.seq),
    metrics: (d.metrics ?? []).map((m) => ({
      name: m.name ?? undefined,
      alias: num(m.alias),
      value: m.value,
      type: m.type,
    })),
  };
}
