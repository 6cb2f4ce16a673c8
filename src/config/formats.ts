/**
 * convict formats shared by the daemon's schema (schema.ts) and the PLC outputs' (src/plc/config.ts). Formats throw
 * messages that read well after "config: <key>: " (see load.ts).
 */
import convict from 'convict';

/**
 * A coerce step that cannot parse its input returns this marker string (convict would otherwise throw from its
 * constructor, or walk into an object), so validation can report it against the key.
 */
const UNPARSABLE = '\u0000unparsable: ';

export function unparsable(why: string): string {
  return UNPARSABLE + why;
}

export function unparsableReason(v: unknown): string | null {
  return typeof v === 'string' && v.startsWith(UNPARSABLE) ? v.slice(UNPARSABLE.length) : null;
}

/**
 * A list of objects, given as JSON in an environment variable or flag (cameras, modbus.outputs, ...). Only the outer
 * shape is checked here; the per-item checks, one message per problem, are the caller's (cameras.ts,
 * validatePlcConfig). `shape` names the items in the message: "must be an array of <shape> objects".
 */
export function addJsonArrayFormat(name: string, shape: string): void {
  convict.addFormat({
    name,
    validate(v: unknown) {
      const why = unparsableReason(v);
      if (why !== null) throw new Error(why);
      if (!Array.isArray(v)) throw new Error(`must be an array of ${shape} objects`);
    },
    coerce(v: string) {
      try {
        return JSON.parse(v) as unknown;
      } catch (err) {
        return unparsable(`not valid JSON (${(err as Error).message})`);
      }
    },
  });
}
