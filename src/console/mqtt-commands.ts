/**
 * Control over MQTT: `{prefix}/{camera}/command` with a JSON payload
 *   {"action": "capture-start", "everyN": 5, "maxImages": 200, "maxBytes": 50000000}
 *   {"action": "capture-stop"} | {"action": "capture-status"}
 *   {"action": "threshold", "threshold": 0.8 | null, "token"?: "<console.token>"}
 * Every command is answered on `{prefix}/{camera}/command/reply` (QoS 1, not retained) with
 * {"action", "ok", "error"?, "capture"?, "threshold"?}. Who may publish there is the broker's ACL (docs/mqtt.md); a
 * threshold change must also pass the console's control policy (auth.ts: the token in the payload).
 */
import type { Logger } from '../log';

/** The part of an mqtt.js client used here. */
export interface CommandClient {
  subscribe(topic: string, opts: { qos: 0 | 1 | 2 }, cb?: (err: Error | null) => void): unknown;
  unsubscribe(topic: string): unknown;
  publish(topic: string, payload: string, opts: { qos: 0 | 1 | 2; retain: boolean }): unknown;
  on(event: 'message', cb: (topic: string, payload: Buffer) => void): unknown;
  on(event: 'connect', cb: () => void): unknown;
  off(event: 'message', cb: (topic: string, payload: Buffer) => void): unknown;
  off(event: 'connect', cb: () => void): unknown;
  connected: boolean;
}

export interface CommandReply {
  action: string;
  ok: boolean;
  error?: string;
  capture?: unknown;
  threshold?: unknown;
}

/** Runs one command for one camera; never throws (errors become {ok: false, error}). */
export type CommandHandler = (camera: string, action: string, args: Record<string, unknown>) => Promise<CommandReply>;

const MAX_PAYLOAD = 4096;

export function commandTopics(prefix: string) {
  return {
    subscription: `${prefix}/+/command`,
    reply: (camera: string) => `${prefix}/${camera}/command/reply`,
  };
}

/** Parses a command payload; returns an error message instead of throwing. */
export function parseCommand(payload: Buffer): { action: string; args: Record<string, unknown> } | { error: string } {
  if (payload.length > MAX_PAYLOAD) return { error: `payload too large (${payload.length} bytes, at most ${MAX_PAYLOAD})` };
  let j: unknown;
  try {
    j = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    return { error: `payload is not JSON (${(err as Error).message}); expected {"action": "capture-start" | "capture-stop" | "capture-status", ...}` };
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) return { error: 'payload must be a JSON object with an "action"' };
  const { action, ...args } = j as Record<string, unknown>;
  if (typeof action !== 'string') return { error: 'missing "action" (capture-start, capture-stop, capture-status)' };
  return { action, args };
}

/** Subscribes (again on every connect) and answers commands; returns the detach function. */
export function attachCommands(client: CommandClient, prefix: string, handle: CommandHandler, log: Logger): () => void {
  const t = commandTopics(prefix);
  const levels = prefix.split('/').length;
  const subscribe = (): void => {
    client.subscribe(t.subscription, { qos: 1 }, (err) => {
      if (err) log.warn({ topic: t.subscription, err: err.message }, 'cannot subscribe to the command topic');
    });
  };
  const onMessage = (topic: string, payload: Buffer): void => {
    const parts = topic.split('/');
    if (parts.length !== levels + 2 || parts[levels + 1] !== 'command' || topic.slice(0, prefix.length + 1) !== `${prefix}/`) return;
    const camera = parts[levels];
    const reply = (r: CommandReply): void => {
      client.publish(t.reply(camera), JSON.stringify(r), { qos: 1, retain: false });
    };
    const cmd = parseCommand(payload);
    if ('error' in cmd) {
      log.warn({ camera, err: cmd.error }, 'MQTT command refused');
      reply({ action: '', ok: false, error: cmd.error });
      return;
    }
    handle(camera, cmd.action, cmd.args).then(reply, (err: Error) => reply({ action: cmd.action, ok: false, error: err.message }));
  };
  client.on('message', onMessage);
  client.on('connect', subscribe);
  if (client.connected) subscribe();
  return () => {
    client.off('message', onMessage);
    client.off('connect', subscribe);
    if (client.connected) client.unsubscribe(t.subscription);
  };
}
