/**
 * The Sparkplug B 3.0 edge node (docs/sparkplug.md) as an output: the daemon is the node, each camera a device
 * (DBIRTH on add, DDATA per result and status, DDEATH on removal). NBIRTH describes the primary model; each
 * camera's DBIRTH names its own.
 */
import type { Registry } from 'prom-client';
import type { DaemonConfig } from '../config/types';
import type { LoadedModel } from '../infer/models';
import type { Logger } from '../log';
import type { Output, OutputHealth } from '../pipeline/interfaces';
import type { CameraStatusMessage, ResultMessage } from '../pipeline/records';
import { redactUrl } from '../redact';
import { DeviceStatus, SparkplugEdgeNode } from '../sparkplug/edge-node';

export class SparkplugOutput implements Output {
  readonly name = 'sparkplug';
  private readonly ngCounts = new Map<string, number>();

  constructor(readonly node: SparkplugEdgeNode) {}

  publishResult(r: ResultMessage): boolean {
    let ng = this.ngCounts.get(r.camera) ?? 0;
    if (r.verdict === 'ng') this.ngCounts.set(r.camera, ++ng);
    this.node.result(r.camera, { frameSeq: r.seq, capturedAt: r.capturedAt, score: r.score, verdict: r.verdict, ngCount: ng, latencyMs: r.latencyMs });
    return true;
  }

  ready(): void {
    this.node.setNode({ status: 'ready' });
  }

  cameraAdded(s: CameraStatusMessage): void {
    this.node.addDevice(s.camera, deviceStatus(s));
  }

  publishCameraStatus(s: CameraStatusMessage): void {
    this.node.status(s.camera, deviceStatus(s));
  }

  cameraRemoved(camera: string): void {
    this.node.removeDevice(camera);
  }

  /** The link state in /healthz; a broken link degrades the daemon (docs/daemon.md, /healthz). */
  health(): OutputHealth {
    const h = this.node.health();
    return { fields: { sparkplug: h }, degraded: h.connected ? [] : ['Sparkplug link down: the edge node is not connected to its broker'] };
  }

  /** NDEATH, then the connection closes; bounded by timeoutMs. */
  async close(_final: CameraStatusMessage[], timeoutMs: number): Promise<void> {
    await this.node.close(timeoutMs);
  }
}

/** The edge node when sparkplug.enabled, on the broker actually used (the embedded one's when mqtt.url is ""). */
export function sparkplugOutput(c: DaemonConfig, mqttUrl: string, primary: LoadedModel, registry: Registry, log: Logger): SparkplugOutput | null {
  if (!c.sparkplug.enabled) return null;
  const s = c.sparkplug;
  const m = primary.engine.manifest;
  const node = new SparkplugEdgeNode(
    {
      groupId: s.groupId,
      edgeNodeId: s.edgeNodeId,
      primaryHostId: s.primaryHostId,
      dataPeriodMs: s.dataPeriodMs,
      mqtt: { ...c.mqtt, url: mqttUrl, clientId: s.clientId || `${c.mqtt.clientId}-spb`, redactedUrl: redactUrl(mqttUrl) },
    },
    { modelName: m.name, modelVersion: m.version, modelMethod: m.method, provider: primary.engine.provider, threshold: 0.5, rawThreshold: m.threshold, status: 'starting' },
    log,
    registry,
  );
  return new SparkplugOutput(node);
}

/** A camera's Sparkplug device values from its status message. */
function deviceStatus(s: CameraStatusMessage): DeviceStatus {
  return {
    state: s.state,
    fps: s.fps,
    modelName: s.model.name,
    modelVersion: s.model.version,
    rawThreshold: s.threshold?.raw ?? null,
    thresholdSource: s.threshold?.source ?? null,
    driftShare: s.drift?.share ?? null,
  };
}
