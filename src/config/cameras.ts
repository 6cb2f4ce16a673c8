/** Deep validation of the `cameras` list: one message per problem, naming the camera's index and key. */
import { parseThreshold, ThresholdError } from '../score/threshold';
import { CameraConfig, Roi } from './types';

const CAMERA_KEYS = new Set(['id', 'url', 'fps', 'roi', 'transport', 'decoder', 'model', 'threshold']);
/** Camera ids become MQTT topic levels and metric labels. */
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export interface CameraValidation {
  cameras: CameraConfig[];
  errors: string[];
}

function validRoi(raw: unknown, key: string, errors: string[]): Roi | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    errors.push(`${key}: must be an object {x, y, width, height} in source pixels`);
    return null;
  }
  const r = raw as Record<string, unknown>;
  const out: Partial<Roi> = {};
  let ok = true;
  for (const k of ['x', 'y', 'width', 'height'] as const) {
    const v = r[k];
    const min = k === 'width' || k === 'height' ? 2 : 0;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
      errors.push(`${key}.${k}: must be an integer >= ${min}`);
      ok = false;
    } else {
      out[k] = v;
    }
  }
  for (const k of Object.keys(r)) {
    if (!['x', 'y', 'width', 'height'].includes(k)) {
      errors.push(`${key}.${k}: not a known key (expected x, y, width, height)`);
      ok = false;
    }
  }
  return ok ? (out as Roi) : null;
}

export function validateCameras(raw: unknown): CameraValidation {
  const errors: string[] = [];
  const cameras: CameraConfig[] = [];
  if (!Array.isArray(raw)) return { cameras, errors: ['cameras: must be an array'] };
  if (raw.length === 0) errors.push('cameras: must list at least one camera');
  const ids = new Set<string>();
  raw.forEach((item: unknown, i: number) => {
    const key = `cameras[${i}]`;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      errors.push(`${key}: must be an object {id, url, ...}`);
      return;
    }
    const c = item as Record<string, unknown>;
    const before = errors.length;
    for (const k of Object.keys(c)) {
      if (!CAMERA_KEYS.has(k)) errors.push(`${key}.${k}: not a known key (expected ${[...CAMERA_KEYS].join(', ')})`);
    }
    const id = c.id;
    if (typeof id !== 'string' || !ID_PATTERN.test(id)) {
      errors.push(`${key}.id: must be 1-64 characters of A-Z a-z 0-9 _ . - (it becomes an MQTT topic level)`);
    } else if (ids.has(id)) {
      errors.push(`${key}.id: duplicate camera id "${id}"`);
    } else {
      ids.add(id);
    }
    const url = c.url;
    // The URL itself is never echoed: RTSP URLs may carry credentials.
    if (typeof url !== 'string' || url.trim() === '') errors.push(`${key}.url: must be a non-empty string`);
    else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url) && !/^(rtsp|rtsps|synthetic|file):\/\//i.test(url)) {
      errors.push(`${key}.url: unsupported scheme (expected rtsp://, rtsps://, synthetic://, a file path or a directory)`);
    }
    const fps = c.fps ?? 0;
    if (typeof fps !== 'number' || !Number.isFinite(fps) || fps < 0 || fps > 1000) {
      errors.push(`${key}.fps: must be a number between 0 (no cap) and 1000`);
    }
    const roi = validRoi(c.roi, `${key}.roi`, errors);
    const transport = c.transport ?? 'tcp';
    if (transport !== 'tcp' && transport !== 'udp') errors.push(`${key}.transport: must be "tcp" or "udp"`);
    const decoder = c.decoder ?? 'ffmpeg';
    if (decoder !== 'ffmpeg' && decoder !== 'jetson-gst') errors.push(`${key}.decoder: must be "ffmpeg" or "jetson-gst"`);
    else if (decoder === 'jetson-gst' && typeof url === 'string' && !/^rtsps?:\/\//i.test(url)) {
      errors.push(`${key}.decoder: "jetson-gst" is only available for rtsp:// cameras`);
    }
    // The folder itself is checked when the model is loaded (src/infer/models.ts), naming the camera and the folder.
    const model = c.model ?? null;
    if (model !== null && (typeof model !== 'string' || model.trim() === '')) {
      errors.push(`${key}.model: must be a model folder path (or left out to use model.dir)`);
    }
    // A raw-score override of the model's threshold (docs/configuration.md, "Threshold override").
    let threshold: number | undefined;
    if (c.threshold !== undefined && c.threshold !== null) {
      try {
        threshold = parseThreshold(typeof id === 'string' ? id : `#${i}`, c.threshold);
      } catch (err) {
        if (!(err instanceof ThresholdError)) throw err;
        errors.push(`${key}.threshold: ${err.message}`);
      }
    }
    if (errors.length === before) {
      cameras.push({
        id: id as string,
        url: url as string,
        fps: fps as number,
        roi,
        transport: transport as 'tcp' | 'udp',
        decoder: decoder as 'ffmpeg' | 'jetson-gst',
        model: model as string | null,
        ...(threshold === undefined ? {} : { threshold }),
      });
    }
  });
  return { cameras, errors };
}
