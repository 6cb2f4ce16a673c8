/**
 * MQTT 5 publisher. Results and snapshots (QoS 0) are only handed to mqtt.js while connected, so nothing stale is
 * queued during an outage; rejects (QoS 1) carry a deadline and an MQTT 5 message expiry and are not sent once
 * offline; statuses are retained and the latest per camera is re-sent on every (re)connect; the last will marks
 * the daemon "offline".
 */
import { readFileSync } from 'node:fs';
import mqtt, { IClientOptions, MqttClient } from 'mqtt';
import { redactUrl } from '../redact';
import type { Logger } from '../log';
import type { MqttConnectionOptions, MqttOptions } from '../config/types';
import type { CameraStatusSink, ResultSink } from '../pipeline/interfaces';
import type { CameraStatusMessage, RejectMessage, ResultMessage } from '../pipeline/records';
import { closedWithoutReason, describeDisconnect } from './disconnect-reason';
import { topics } from './messages';

export type { MqttConnectionOptions, MqttOptions };

/** Bytes waiting in the socket above which results and snapshots are dropped (a slow broker must not grow memory). */
export const MAX_SOCKET_BACKLOG = 4 * 1024 * 1024;

export interface PublishCounters {
  results: number;
  resultsUnsent: number;
  congested: number;
  rejects: number;
  rejectsUnsent: number;
  snapshots: number;
  snapshotsUnsent: number;
}

/** Username, password and TLS files as mqtt.js options (files read now); shared by every MQTT connection. */
export function credentialOptions(o: Pick<MqttConnectionOptions, 'username' | 'password' | 'ca' | 'cert' | 'key'>): IClientOptions {
  const out: IClientOptions = {};
  if (o.username) out.username = o.username;
  if (o.password) out.password = o.password;
  if (o.ca) out.ca = readFileSync(o.ca);
  if (o.cert) out.cert = readFileSync(o.cert);
  if (o.key) out.key = readFileSync(o.key);
  return out;
}

export class Publisher implements ResultSink, CameraStatusSink {
  readonly client: MqttClient;
  /** The same client, for the console's command topic (src/console/mqtt-commands.ts). */
  get commandClient(): MqttClient {
    return this.client;
  }
  readonly counters: PublishCounters = { results: 0, resultsUnsent: 0, congested: 0, rejects: 0, rejectsUnsent: 0, snapshots: 0, snapshotsUnsent: 0 };
  private readonly t: ReturnType<typeof topics>;
  private readonly statuses = new Map<string, CameraStatusMessage>();
  private lastError: string | undefined;
  private protocol: 4 | 5;
  private connectedOnce = false;
  /** When the current connection came up (0 = not connected), and whether its end has been explained already. */
  private connectedAt = 0;
  private closeExplained = false;
  private ending = false;
  private readonly connectWaiters: (() => void)[] = [];

  constructor(
    private readonly opts: MqttOptions,
    private readonly log: Logger,
  ) {
    this.t = topics(opts.topicPrefix);
    this.protocol = opts.protocolVersion ?? 5;
    const clientOpts: IClientOptions = {
      protocolVersion: opts.protocolVersion ?? 5,
      clientId: opts.clientId,
      clean: true,
      keepalive: 15,
      reconnectPeriod: 1000,
      // mqtt.js stops reconnecting after a refused CONNACK unless told otherwise; a broker that refuses during its
      // own restart (or until credentials are fixed) must not silence the daemon for good.
      reconnectOnConnackError: true,
      connectTimeout: opts.connectTimeoutMs,
      // Never queue QoS 0 while offline (results are stale by the time the link is back).
      queueQoSZero: false,
      will: { topic: this.t.status, payload: Buffer.from('offline'), qos: 1, retain: true },
      rejectUnauthorized: opts.rejectUnauthorized,
    };
    Object.assign(clientOpts, credentialOptions(opts));
    this.client = mqtt.connect(opts.url, clientOpts);
    const where = redactUrl(opts.url);
    this.client.on('connect', () => {
      this.lastError = undefined;
      this.connectedAt = Date.now();
      this.closeExplained = false;
      this.log.info({ broker: where }, this.connectedOnce ? 'MQTT reconnected' : 'MQTT connected');
      this.connectedOnce = true;
      this.client.publish(this.t.status, 'online', { qos: 1, retain: true });
      for (const s of this.statuses.values()) this.sendStatus(s);
      for (const w of this.connectWaiters.splice(0)) w();
    });
    this.client.on('error', (err: Error & { code?: number }) => {
      // A broker without MQTT 5 refuses the CONNECT (v3 return code 1 / v5 reason 132): continue with 3.1.1.
      if (this.protocol === 5 && !this.connectedOnce && (err.code === 1 || err.code === 132)) {
        this.protocol = 4;
        this.client.options.protocolVersion = 4;
        delete this.client.options.properties;
        this.log.warn({ broker: where }, 'broker does not support MQTT 5: using MQTT 3.1.1 (no message properties)');
        return;
      }
      this.closeExplained = true; // the error says why the connection went
      // mqtt.js keeps reconnecting by itself; log each distinct problem once.
      if (err.message !== this.lastError) this.log.warn({ broker: where, err: err.message }, 'MQTT error');
      this.lastError = err.message;
    });
    // Why the broker closed the session (docs/mqtt.md, top). MQTT 5 brokers may say it in a DISCONNECT
    // packet (e.g. session taken over by a client with the same id); others (MQTT 3.1.1, mosquitto 2.0.11) just
    // close the socket, which the 'close' handler below reports with the likely cause.
    this.client.on('disconnect', (packet) => {
      this.closeExplained = true;
      const reason = describeDisconnect(packet, this.clientId());
      this.log.warn({ broker: where, reasonCode: packet.reasonCode ?? 0, reason }, `MQTT broker closed the session: ${reason}`);
    });
    this.client.on('close', () => {
      const upMs = this.connectedAt > 0 ? Date.now() - this.connectedAt : 0;
      if (this.connectedAt > 0 && !this.closeExplained && !this.ending) {
        this.log.warn({ broker: where, connectedForMs: upMs }, closedWithoutReason(this.clientId(), upMs));
      }
      this.connectedAt = 0;
    });
    this.client.on('offline', () => this.log.warn({ broker: where }, 'MQTT offline (results are dropped until reconnected)'));
  }

  get connected(): boolean {
    return this.client.connected;
  }

  /** Calls listener(true) on every (re)connect and listener(false) whenever the connection closes. */
  onConnection(listener: (connected: boolean) => void): void {
    this.client.on('connect', () => listener(true));
    this.client.on('close', () => listener(false));
  }

  /** Resolves once connected (at once if already). */
  waitConnected(): Promise<void> {
    if (this.client.connected) return Promise.resolve();
    return new Promise((res) => this.connectWaiters.push(res));
  }

  /** Connected but the broker does not keep up: the socket holds more than MAX_SOCKET_BACKLOG unsent bytes. */
  get congested(): boolean {
    const stream = this.client.stream as { writableLength?: number } | undefined;
    return (stream?.writableLength ?? 0) > MAX_SOCKET_BACKLOG;
  }

  publishResult(r: ResultMessage): boolean {
    if (!this.client.connected || this.congested) {
      if (this.client.connected) this.counters.congested++;
      this.counters.resultsUnsent++;
      return false;
    }
    this.client.publish(this.t.result(r.camera), JSON.stringify(r), { qos: 0 });
    this.counters.results++;
    return true;
  }

  publishReject(r: RejectMessage): boolean {
    const ttlMs = r.deadline - Date.now();
    if (!this.client.connected || ttlMs <= 0) {
      this.counters.rejectsUnsent++;
      return false;
    }
    this.client.publish(this.t.reject(r.camera), JSON.stringify(r), {
      qos: 1,
      ...(this.mqtt5 ? { properties: { messageExpiryInterval: Math.max(1, Math.ceil(ttlMs / 1000)), contentType: 'application/json' } } : {}),
    });
    this.counters.rejects++;
    return true;
  }

  get mqtt5(): boolean {
    return this.protocol === 5;
  }

  publishSnapshot(camera: string, data: Buffer, contentType: string, user: Record<string, string>): boolean {
    if (!this.client.connected || this.congested) {
      if (this.client.connected) this.counters.congested++;
      this.counters.snapshotsUnsent++;
      return false;
    }
    // MQTT 3.1.1 has no properties: the payload alone (its type is fixed by snapshot.format).
    const properties = this.mqtt5 ? { properties: { contentType, userProperties: user } } : {};
    this.client.publish(this.t.snapshot(camera), data, { qos: 0, ...properties });
    this.counters.snapshots++;
    return true;
  }

  private clientId(): string {
    return this.client.options.clientId ?? this.opts.clientId;
  }

  /** Retained; remembered so that the latest state is re-sent after a reconnect. */
  publishCameraStatus(s: CameraStatusMessage): void {
    this.statuses.set(s.camera, s);
    if (this.client.connected) this.sendStatus(s);
  }

  /** A removed camera: clear its retained status. */
  forgetCamera(camera: string): void {
    this.statuses.delete(camera);
    if (this.client.connected) this.client.publish(this.t.cameraStatus(camera), '', { qos: 1, retain: true });
  }

  private sendStatus(s: CameraStatusMessage): void {
    this.client.publish(this.t.cameraStatus(s.camera), JSON.stringify(s), { qos: 1, retain: true });
  }

  /** Publishes final statuses + "offline" (retained) and disconnects; bounded by timeoutMs. */
  async close(finalStatuses: CameraStatusMessage[], timeoutMs: number): Promise<void> {
    this.ending = true;
    const publishAll = async (): Promise<void> => {
      if (this.client.connected) {
        for (const s of finalStatuses) {
          this.statuses.set(s.camera, s);
          await this.client.publishAsync(this.t.cameraStatus(s.camera), JSON.stringify(s), { qos: 1, retain: true });
        }
        await this.client.publishAsync(this.t.status, 'offline', { qos: 1, retain: true });
        await this.client.endAsync();
        return;
      }
      // Not connected (yet): nothing to flush. A graceful end would leave a CONNECT in progress open until the
      // connect timeout (10 s), keeping the embedded broker's close and a failed start-up waiting that long.
      await this.client.endAsync(true);
    };
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((res) => {
      timer = setTimeout(res, timeoutMs);
    });
    await Promise.race([publishAll().catch((err: Error) => this.log.warn({ err: err.message }, 'MQTT close failed')), timeout]);
    clearTimeout(timer);
    if (this.client.connected || !this.client.disconnected) this.client.end(true);
  }
}
