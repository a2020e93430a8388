// Top functions by self time in V8 CPU profiles (BENCH_CPU_PROF=<dir>): `npx node bench/profile-top.ts <dir> [n]`.
// Sums every .cpuprofile in the directory (the cluster workers'), groups by function and file, and prints the
// n largest as a Markdown table: self time share, and the module (node_modules package or our own file).
import fs from 'node:fs';
import path from 'node:path';

type Node = { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number; children?: number[] };
type Profile = { nodes: Node[]; samples?: number[]; timeDeltas?: number[]; startTime: number; endTime: number };

export function topOf(
  dir: string,
  n = 15,
): { rows: { name: string; where: string; share: number }[]; idleShare: number; packages: { name: string; share: number }[] } {
  const self = new Map<string, number>();
  const byPackage = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    const p = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as Profile;
    const byId = new Map(p.nodes.map((x) => [x.id, x]));
    const parent = new Map<number, number>();
    for (const x of p.nodes) for (const c of x.children ?? []) parent.set(c, x.id);
    // The package (or our own file) whose code led to this sample: the nearest frame with a file of its own,
    // skipping Node's internals, so socket writes and crypto jobs count for whoever asked for them.
    const owner = (id: number): string => {
      for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
        const url = ours(byId.get(at)!.callFrame.url);
        const nm = url.lastIndexOf('node_modules/');
        if (nm >= 0) {
          const rest = url.slice(nm + 'node_modules/'.length).split('/');
          return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
        }
        const src = url.search(/\/(src|bench)\//);
        if (src >= 0) return url.slice(src + 1);
      }
      return '(node internals, no caller of ours)';
    };
    const samples = p.samples ?? [];
    const deltas = p.timeDeltas ?? [];
    for (let i = 0; i < samples.length; i++) {
      const node = byId.get(samples[i]!)!;
      const dt = deltas[i] ?? 0;
      const fn = node.callFrame.functionName || '(anonymous)';
      if (fn === '(idle)' || fn === '(program)') {
        if (fn === '(idle)') idle += dt;
        total += dt;
        continue;
      }
      const key = `${fn}\u0000${where(node.callFrame.url, node.callFrame.lineNumber)}`;
      self.set(key, (self.get(key) ?? 0) + dt);
      const pkg = owner(node.id);
      byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + dt);
      total += dt;
    }
  }
  const busy = total - idle;
  const rows = [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, t]) => {
      const [name, at] = k.split('\u0000') as [string, string];
      return { name, where: at, share: t / busy };
    });
  const packages = [...byPackage]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, t]) => ({ name, share: t / busy }));
  return { rows, idleShare: idle / total, packages };
}

// The compiled package the bench runs (bench/run.ts buildPackage) lies under node_modules/.cache: its files are ours.
const BUILT = /\/node_modules\/\.cache\/seal-idms-bench\/[^/]+\//;
const ours = (url: string) => url.replace(BUILT, '/');

function where(at: string, line: number): string {
  const url = ours(at);
  if (!url) return '(native)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length) + `:${line + 1}`;
  const src = url.search(/\/(src|bench)\//);
  if (src >= 0) return url.slice(src + 1) + `:${line + 1}`;
  return url.replace(/^node:/, 'node:') + `:${line + 1}`;
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  const dir = process.argv[2];
  if (!dir) throw new Error('usage: bench/profile-top.ts <dir with .cpuprofile files> [n]');
  const { rows, idleShare, packages } = topOf(dir, Number(process.argv[3] ?? 15));
  process.stdout.write(
    `idle ${(idleShare * 100).toFixed(0)} % of the sampled time; shares below are of the busy time\n\n| self % | function | where |\n|---:|---|---|\n`,
  );
  for (const r of rows) process.stdout.write(`| ${(r.share * 100).toFixed(1)} | ${r.name} | ${r.where} |\n`);
  process.stdout.write(`\nBy the package or file whose code ran (or called into Node for) the sample:\n\n| self % | package / file |\n|---:|---|\n`);
  for (const r of packages) process.stdout.write(`| ${(r.share * 100).toFixed(1)} | ${r.name} |\n`);
}
