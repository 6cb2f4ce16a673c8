/**
 * Which configured execution providers the loaded onnxruntime-node binding can actually use, decided before any
 * session is created. Trying a provider the binding cannot load makes onnxruntime print a raw (red, non-JSON)
 * error line of its own before the daemon can fall back; the CPU-only bindings (linux/arm64 npm package, a
 * linux/x64 install without the CUDA provider libraries) would do that at every start with the default list.
 *
 * onnxruntime-node lists its backends (`listSupportedBackends()`: name + `bundled`). A backend that is not
 * bundled is a provider library loaded at session creation from the binding's folder
 * (`libonnxruntime_providers_<name>.so`, plus `libonnxruntime_providers_shared.so`), which the package's install
 * script downloads (skipped with ONNXRUNTIME_NODE_INSTALL=skip) and the Jetson image copies in (Dockerfile.l4t).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Provider } from '../config/types';

export interface BackendInfo {
  name: string;
  bundled: boolean;
}

export interface ProviderAvailability {
  /** The requested providers this binding can use, in the requested order. */
  usable: Provider[];
  /** Requested providers left out, each with the reason. */
  skipped: Array<{ provider: Provider; reason: string }>;
}

/** File name of a provider library on this platform. */
export function providerLibrary(name: string, platform: NodeJS.Platform = process.platform): string {
  if (platform === 'win32') return `onnxruntime_providers_${name}.dll`;
  return `libonnxruntime_providers_${name}${platform === 'darwin' ? '.dylib' : '.so'}`;
}

/** Pure: `backends` from the binding, `libraryExists(file)` checks the binding's folder. */
export function availableProviders(
  requested: readonly Provider[],
  backends: readonly BackendInfo[],
  libraryExists: (file: string) => boolean,
  platform: NodeJS.Platform = process.platform,
): ProviderAvailability {
  const usable: Provider[] = [];
  const skipped: ProviderAvailability['skipped'] = [];
  const names = backends.map((b) => b.name).join(', ') || 'none';
  for (const p of requested) {
    const b = backends.find((x) => x.name === p);
    if (!b) {
      skipped.push({ provider: p, reason: `not in this onnxruntime-node build (its backends: ${names})` });
      continue;
    }
    if (!b.bundled) {
      const missing = [providerLibrary(p, platform), providerLibrary('shared', platform)].filter((f) => !libraryExists(f));
      if (missing.length > 0) {
        skipped.push({ provider: p, reason: `provider library ${missing.join(' and ')} not installed next to the onnxruntime-node binding` });
        continue;
      }
    }
    usable.push(p);
  }
  return { usable, skipped };
}

/** Folder of the loaded binding (bin/napi-v6/<platform>/<arch>), where onnxruntime looks for provider libraries. */
export function bindingDir(): string {
  return join(dirname(require.resolve('onnxruntime-node/package.json')), 'bin', 'napi-v6', process.platform, process.arch);
}

/** The installed binding's answer; a binding too old to list its backends is assumed to have what it is asked for. */
export function installedAvailability(requested: readonly Provider[], listSupportedBackends: (() => BackendInfo[]) | undefined): ProviderAvailability {
  if (typeof listSupportedBackends !== 'function') return { usable: [...requested], skipped: [] };
  const dir = bindingDir();
  return availableProviders(requested, listSupportedBackends(), (f) => existsSync(join(dir, f)));
}
