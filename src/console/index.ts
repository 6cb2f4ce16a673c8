/** The operator console (docs/console.md): one entry point for its output (src/outputs/console.ts). */
import type { Logger } from '../log';
import type { ModelManifest } from '../infer/manifest';
import { ConsoleHub, describeMethod } from './hub';
import { attachCommands, CommandClient } from './mqtt-commands';
import { consoleHandler, RequestHandler } from './server';
import type { ConsoleOptions, ConsoleSources } from './types';

export { ConsoleHub } from './hub';
export type { ConsoleResult, ConsoleOptions, ConsoleModel, ConsoleSources, ConsoleCameraStatus } from './types';

export interface ConsoleSetup {
  options: Omit<ConsoleOptions, 'host'>;
  /** http.host: decides whether control needs the token. */
  host: string;
  topicPrefix: string;
  model: Pick<ModelManifest, 'name' | 'version' | 'width' | 'height' | 'normalization' | 'method' | 'thresholdMethod' | 'finetune'>;
  sources: ConsoleSources;
  /** The daemon's MQTT client (commands in, replies out); null = no MQTT commands. */
  mqtt: CommandClient | null;
  log: Logger;
}

export interface ConsoleParts {
  hub: ConsoleHub;
  /** For startHttp's `extra`. */
  handler: RequestHandler;
  close(): Promise<void>;
}

export function createConsole(s: ConsoleSetup): ConsoleParts {
  const m = s.model;
  const hub = new ConsoleHub(
    { ...s.options, host: s.host },
    { width: m.width, height: m.height, normalization: m.normalization, name: m.name, version: m.version, method: describeMethod(m) },
    s.sources,
    s.log,
  );
  const detach = s.mqtt && s.options.mqttCommands ? attachCommands(s.mqtt, s.topicPrefix, (cam, action, args) => hub.command(cam, action, args), s.log) : null;
  return {
    hub,
    handler: consoleHandler(hub, s.log),
    close: async () => {
      detach?.();
      await hub.close();
    },
  };
}
