/**
 * The operator console (docs/console.md) as an output: it sees every scored frame (live image, NG history,
 * capture), answers its routes on the daemon's HTTP server and takes commands on the MQTT command topic.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DaemonConfig } from '../config/types';
import { ConsoleParts, ConsoleSources, createConsole } from '../console';
import type { CommandClient } from '../console/mqtt-commands';
import type { LoadedModel } from '../infer/models';
import type { Logger } from '../log';
import type { Output } from '../pipeline/interfaces';
import type { ScoredFrame } from '../pipeline/records';

/** The console runs only where it can be reached: enabled, and the HTTP server on. */
export function consoleWanted(c: DaemonConfig): boolean {
  return c.console.enabled && c.http.port > 0;
}

export class ConsoleOutput implements Output {
  readonly name = 'console';

  constructor(readonly parts: ConsoleParts) {}

  scoredFrame(f: ScoredFrame): void {
    this.parts.hub.onResult(f);
  }

  handleHttp(req: IncomingMessage, res: ServerResponse): boolean {
    return this.parts.handler(req, res);
  }

  /** The last capture write finishes. */
  async close(): Promise<void> {
    await this.parts.close();
  }
}

export function consoleOutput(c: DaemonConfig, primary: LoadedModel, sources: ConsoleSources, mqtt: CommandClient | null, log: Logger): ConsoleOutput | null {
  if (!consoleWanted(c)) return null;
  return new ConsoleOutput(createConsole({ options: c.console, host: c.http.host, topicPrefix: c.mqtt.topicPrefix, model: primary.engine.manifest, sources, mqtt, log }));
}
