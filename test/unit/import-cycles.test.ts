/**
 * The daemon's modules form no import loop (type-only imports included): records and interfaces sit at the bottom
 * (src/pipeline/records.ts, interfaces.ts), config, sources, pipeline and the outputs build on them
 * (docs/daemon.md, "Architecture"). Walks the TypeScript sources, so it needs no build of anything else.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { REPO } from './helpers';

const SRC = join(REPO, 'src');

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return tsFiles(p);
    return p.endsWith('.ts') ? [p] : [];
  });
}

/** Relative imports and re-exports of one file, resolved to files under src/. */
function importsOf(file: string, known: Set<string>): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+'(\.[^']+)'/g)) {
    const base = resolve(dirname(file), m[1]);
    const target = [`${base}.ts`, join(base, 'index.ts')].find((p) => known.has(p));
    assert.ok(target, `${relative(REPO, file)}: import '${m[1]}' resolves to no file`);
    out.push(target);
  }
  return out;
}

/** Strongly connected components with more than one file, or a file importing itself (Tarjan). */
export function importLoops(graph: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const loops: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) as number, index.get(w) as number));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const scc: string[] = [];
    let w: string;
    do {
      w = stack.pop() as string;
      onStack.delete(w);
      scc.push(w);
    } while (w !== v);
    if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) loops.push(scc.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return loops;
}

describe('module structure', () => {
  it('the loop finder finds a loop (a -> b -> a) and none in a chain', () => {
    assert.deepEqual(importLoops(new Map([['a', ['b']], ['b', ['a']], ['c', ['a']]])), [['a', 'b']]);
    assert.deepEqual(importLoops(new Map([['a', ['b']], ['b', ['c']], ['c', []]])), []);
  });

  it('no import loop anywhere in src/', () => {
    const files = tsFiles(SRC);
    const known = new Set(files);
    const graph = new Map(files.map((f) => [f, importsOf(f, known)]));
    const loops = importLoops(graph).map((l) => l.map((f) => relative(SRC, f)).join(' <-> '));
    assert.deepEqual(loops, [], `import loops:\n${loops.join('\n')}`);
  });
});
