/**
 * Loads the configuration: schema defaults < JSON file (--config) < environment < command-line flags.
 * Never throws for bad input: returns every problem as "<key>: <why>" so main.ts can print one line each and exit 2.
 */
import convict from 'convict';
import { accessSync, constants, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { redactUrl } from '../redact';
import { validateCameras } from './cameras';
import { validatePlcConfig } from '../plc/config';
import { buildSchema, valueFlags } from './schema';
import { DaemonConfig } from './types';

export interface LoadInput {
  argv: string[];
  env: NodeJS.ProcessEnv;
}

export type LoadResult =
  | { kind: 'ok'; config: DaemonConfig; configFile: string | null }
  | { kind: 'help'; text: string }
  | { kind: 'error'; errors: string[] };

const UNDECLARED = /^configuration param '(.+)' not declared in the schema$/;
const MISSING = /^configuration param '(.+)' missing from config, did you override its parent\?$/;

/** convict reports "key: message: value was ..." one per line; turn each into "key: why". */
function convictErrors(message: string): string[] {
  return message
    .split('\n')
    .filter((l) => l.trim().length > 0)
    .map((line) => {
      const u = UNDECLARED.exec(line);
      if (u) return `${u[1]}: not a known key`;
      const m = MISSING.exec(line);
      if (m) return `${m[1]}: missing (was its parent object replaced?)`;
      return line;
    });
}

function usage(): string {
  return [
    'usage: etstpm-edge [--config FILE.json] [--cameras JSON] [--model-dir DIR] [--model-providers tensorrt,cuda,cpu]',
    '                   [--mqtt-url URL] [--mqtt-topic-prefix P] [--http-port N] [--log-level LEVEL]',
    'With no configuration it runs the demo: embedded MQTT broker, a synthetic camera, models/demo.',
    'Every key, its environment variable and flag: docs/configuration.md',
  ].join('\n');
}

function checkReadable(key: string, path: string, errors: string[]): void {
  if (path === '') return;
  try {
    accessSync(path, constants.R_OK);
  } catch (err) {
    errors.push(`${key}: cannot read file "${path}" (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

export function loadConfig(input: LoadInput): LoadResult {
  const schema = buildSchema();
  const flagNames = valueFlags(schema);
  const options: Record<string, { type: 'string' | 'boolean' }> = {
    config: { type: 'string' },
    help: { type: 'boolean' },
  };
  for (const f of flagNames) options[f] = { type: 'string' };
  let flags: Record<string, string | boolean | undefined>;
  try {
    flags = parseArgs({ args: input.argv, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    return { kind: 'error', errors: [`command line: ${(err as Error).message}`] };
  }
  if (flags.help) return { kind: 'help', text: usage() };

  const configFile = typeof flags.config === 'string' ? flags.config : null;
  const convictArgs: string[] = [];
  for (const f of flagNames) {
    const v = flags[f];
    if (typeof v === 'string') convictArgs.push(`--${f}=${v}`);
  }

  const errors: string[] = [];
  let conf: convict.Config<Record<string, unknown>>;
  try {
    conf = convict(schema as unknown as convict.Schema<Record<string, unknown>>, {
      env: input.env,
      args: convictArgs,
    });
  } catch (err) {
    return { kind: 'error', errors: [`environment/flags: ${(err as Error).message}`] };
  }
  if (configFile !== null) {
    let text: string;
    try {
      text = readFileSync(configFile, 'utf8');
    } catch (err) {
      return { kind: 'error', errors: [`--config: cannot read "${configFile}" (${(err as NodeJS.ErrnoException).code ?? 'error'})`] };
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      return { kind: 'error', errors: [`--config: "${configFile}" is not valid JSON (${(err as Error).message})`] };
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      return { kind: 'error', errors: [`--config: "${configFile}" must hold a JSON object`] };
    }
    try {
      conf.load(parsed as Record<string, unknown>);
    } catch (err) {
      return { kind: 'error', errors: [`--config: "${configFile}": ${(err as Error).message}`] };
    }
  }
  try {
    conf.validate({ allowed: 'strict' });
  } catch (err) {
    errors.push(...convictErrors((err as Error).message));
  }
  const props = conf.getProperties() as unknown as DaemonConfig;
  const cams = validateCameras(props.cameras);
  // The cameras format already reported a non-array / unparsable value; don't repeat it.
  if (Array.isArray(props.cameras)) errors.push(...cams.errors);
  if (Number.isInteger(props.ingest?.reconnectMinMs) && props.ingest.reconnectMaxMs < props.ingest.reconnectMinMs) {
    errors.push('ingest.reconnectMaxMs: must be >= ingest.reconnectMinMs');
  }
  const m = props.mqtt;
  if (m) {
    checkReadable('mqtt.ca', m.ca, errors);
    checkReadable('mqtt.cert', m.cert, errors);
    checkReadable('mqtt.key', m.key, errors);
    if ((m.cert === '') !== (m.key === '')) errors.push(`mqtt.${m.cert === '' ? 'cert' : 'key'}: mqtt.cert and mqtt.key must be given together`);
    if (m.password !== '' && m.username === '') errors.push('mqtt.username: required when mqtt.password is set');
    if (m.url === '' && (m.ca !== '' || m.cert !== '' || m.username !== '')) {
      errors.push('mqtt.url: TLS files or credentials are set but mqtt.url is "" (embedded broker, plain TCP on localhost)');
    }
  }
  // PLC / SCADA outputs (docs/sparkplug.md): per-output checks and that each output's camera exists.
  const plc = validatePlcConfig(props, Array.isArray(props.cameras) ? props.cameras.map((c) => (c as { id?: unknown }).id).filter((id): id is string => typeof id === 'string') : []);
  errors.push(...plc.errors);
  if (errors.length > 0) return { kind: 'error', errors };
  return { kind: 'ok', config: { ...props, cameras: cams.cameras, modbus: { ...props.modbus, outputs: plc.modbusOutputs, heartbeats: plc.modbusHeartbeats } }, configFile };
}

/** Re-reads the camera list and the default model folder from the same sources (SIGHUP). */
export function reloadCameras(input: LoadInput): { kind: 'ok'; cameras: DaemonConfig['cameras']; modelDir: string } | { kind: 'error'; errors: string[] } {
  const r = loadConfig(input);
  if (r.kind === 'ok') return { kind: 'ok', cameras: r.config.cameras, modelDir: r.config.model.dir };
  if (r.kind === 'help') return { kind: 'error', errors: ['unexpected --help'] };
  return r;
}

/** A copy safe to log: secrets masked, credentials stripped from URLs. */
export function redactConfig(c: DaemonConfig): unknown {
  return {
    ...c,
    cameras: c.cameras.map((cam) => ({ ...cam, url: redactUrl(cam.url) })),
    mqtt: { ...c.mqtt, url: redactUrl(c.mqtt.url), password: c.mqtt.password ? '[redacted]' : '' },
    console: c.console && { ...c.console, token: c.console.token ? '[redacted]' : '' },
  };
}
