// What this machine offers TensorRT: library version, GPU compute capability, L4T release.
// Read from files only (no CUDA call), so it works in any container and is testable with a fake root.
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface PlatformFacts {
  /** e.g. "10.3.0"; null when no libnvinfer.so.<version> was found. */
  tensorrtVersion: string | null;
  /** Where that library was found (for log lines). */
  tensorrtLibrary: string | null;
  /** e.g. "8.7"; null when unknown (not a Jetson and no override). */
  computeCapability: string | null;
  /** e.g. "NVIDIA Jetson AGX Orin Developer Kit"; null when unknown. */
  deviceModel: string | null;
  /** e.g. "36.4.0" from /etc/nv_tegra_release; null off L4T. */
  l4tRelease: string | null;
}

export interface PlatformProbeOptions {
  /** Prefix for absolute paths (tests point it at a temporary tree); default "/". */
  root?: string;
  /** Extra directories searched first for libnvinfer (env ETSTPM_TRT_LIB_DIR, colon-separated). */
  libDirs?: readonly string[];
  env?: NodeJS.ProcessEnv;
}

export const DEFAULT_TRT_LIB_DIRS: readonly string[] = [
  '/usr/lib/aarch64-linux-gnu',
  '/usr/lib/x86_64-linux-gnu',
  '/usr/local/cuda/lib64',
  '/usr/local/lib',
  '/usr/lib',
];

// Jetson SoC -> CUDA compute capability (NVIDIA's CUDA GPUs table).
export const TEGRA_COMPUTE_CAPABILITY: Readonly<Record<string, string>> = {
  'nvidia,tegra234': '8.7', // Orin (AGX, NX, Nano)
  'nvidia,tegra194': '7.2', // Xavier
  'nvidia,tegra186': '6.2', // TX2
  'nvidia,tegra210': '5.3', // TX1 / Nano
};

function readText(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/** Highest libnvinfer.so.<x.y.z> version in the given directories (first directory that has one wins). */
export function findTensorRtLibrary(dirs: readonly string[]): { version: string; file: string } | null {
  for (const dir of dirs) {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      continue;
    }
    const versions = names
      .map((n) => /^libnvinfer\.so\.(\d+\.\d+\.\d+)$/.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => m[1]!)
      .sort((a, b) => compareVersions(b, a));
    if (versions.length > 0) return { version: versions[0]!, file: path.join(dir, `libnvinfer.so.${versions[0]}`) };
  }
  return null;
}

export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** "# R36 (release), REVISION: 4.0, GCID: ..." -> "36.4.0" */
export function parseNvTegraRelease(text: string): string | null {
  const m = /#\s*R(\d+)\s*\(release\),\s*REVISION:\s*(\d+)\.(\d+)/.exec(text);
  return m ? `${m[1]}.${m[2]}.${m[3]}` : null;
}

/** /proc/device-tree/compatible is a NUL-separated list; the first known tegra SoC decides. */
export function computeCapabilityFromCompatible(text: string): string | null {
  for (const entry of text.split('\0')) {
    const cc = TEGRA_COMPUTE_CAPABILITY[entry.trim()];
    if (cc) return cc;
  }
  return null;
}

export function probePlatform(opts: PlatformProbeOptions = {}): PlatformFacts {
  const env = opts.env ?? process.env;
  // ETSTPM_TRT_PROBE_ROOT: probe a different tree (tests; inspecting a mounted image) instead of "/".
  const root = opts.root ?? env.ETSTPM_TRT_PROBE_ROOT ?? '/';
  const at = (p: string): string => path.join(root, p);
  const envDirs = (env.ETSTPM_TRT_LIB_DIR ?? '').split(':').filter((d) => d.length > 0);
  const dirs = [...(opts.libDirs ?? []), ...envDirs, ...DEFAULT_TRT_LIB_DIRS.map(at)];
  const lib = findTensorRtLibrary(dirs);

  const compatible = readText(at('/proc/device-tree/compatible'));
  const model = readText(at('/proc/device-tree/model'));
  const release = readText(at('/etc/nv_tegra_release'));
  const ccOverride = env.ETSTPM_GPU_COMPUTE_CAPABILITY;
  return {
    tensorrtVersion: lib?.version ?? null,
    tensorrtLibrary: lib?.file ?? null,
    computeCapability: ccOverride && /^\d+\.\d+$/.test(ccOverride)
      ? ccOverride
      : compatible !== null ? computeCapabilityFromCompatible(compatible) : null,
    deviceModel: model !== null ? model.replace(/\0/g, '').trim() || null : null,
    l4tRelease: release !== null ? parseNvTegraRelease(release) : null,
  };
}
