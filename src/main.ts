/**
 * etstpm-edge entry point: `node dist/src/main.js [--config FILE] [flags]`.
 * Exit codes: 0 clean shutdown, 1 other fatal error, 2 invalid configuration, 3 model cannot be loaded.
 */
import { loadConfig, redactConfig, reloadCameras } from './config/load';
import { Daemon } from './daemon';
import { ModelError } from './infer/manifest';
import { createLogger } from './log';

export const EXIT = { ok: 0, fatal: 1, config: 2, model: 3 } as const;

/** SIGTERM must end the process within 5 s even if something hangs. */
const STOP_DEADLINE_MS = 4500;

async function main(argv: string[]): Promise<void> {
  const input = { argv, env: process.env };
  const loaded = loadConfig(input);
  if (loaded.kind === 'help') {
    process.stdout.write(`${loaded.text}\n`);
    return;
  }
  if (loaded.kind === 'error') {
    for (const e of loaded.errors) process.stderr.write(`config: ${e}\n`);
    process.exit(EXIT.config);
  }
  const config = loaded.config;
  const log = createLogger(config.log.level);
  log.info({ config: redactConfig(config), configFile: loaded.configFile }, 'configuration loaded');
  const daemon = new Daemon(config, log);

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, `received ${signal}: finishing the frame in flight`);
    const force = setTimeout(() => {
      log.error(`shutdown took longer than ${STOP_DEADLINE_MS} ms: exiting anyway`);
      process.exit(EXIT.fatal);
    }, STOP_DEADLINE_MS);
    force.unref();
    daemon.stop().then(
      () => process.exit(EXIT.ok),
      (err: Error) => {
        log.error({ err: err.message }, 'error during shutdown');
        process.exit(EXIT.fatal);
      },
    );
  };
  // A bug must not leave a half-working daemon: log it and exit non-zero so systemd restarts the service.
  process.on('uncaughtException', (err) => {
    log.fatal({ err: err.message, stack: err.stack }, 'uncaught exception');
    process.exit(EXIT.fatal);
  });
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    const r = reloadCameras(input);
    if (r.kind === 'error') {
      for (const e of r.errors) log.error(`config: ${e}`);
      log.error('SIGHUP: new camera list rejected; keeping the current cameras');
      return;
    }
    daemon.reloadCameras(r.cameras, r.modelDir).catch((err: Error) => log.error({ err: err.message }, 'camera reload failed'));
  });

  try {
    await daemon.start();
  } catch (err) {
    if (err instanceof ModelError) {
      process.stderr.write(`model: ${err.message}\n`);
      log.fatal({ err: err.message }, 'model cannot be loaded');
      await daemon.stop().catch(() => undefined);
      process.exit(EXIT.model);
    }
    process.stderr.write(`fatal: ${(err as Error).message}\n`);
    log.fatal({ err: (err as Error).message }, 'start-up failed');
    await daemon.stop().catch(() => undefined);
    process.exit(EXIT.fatal);
  }
}

if (require.main === module) {
  void main(process.argv.slice(2));
}
