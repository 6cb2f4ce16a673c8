/** pino logger. Secrets are redacted by path as a second line of defence; callers log redacted URLs already. */
import pino from 'pino';

export type Logger = pino.Logger;

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'etstpm-edge' },
      redact: {
        paths: ['password', '*.password', 'mqtt.password', 'config.mqtt.password', 'headers.authorization'],
        censor: '[redacted]',
      },
    },
    destination ?? pino.destination({ dest: 2, sync: true }),
  );
}
