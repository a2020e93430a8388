// `npm run build`: the production bundle the container image runs (dist/image): sources, migrations, views and
// the production node_modules only, then a smoke check that every module loads from inside it.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = path.resolve(import.meta.dirname, '..');
const OUT = path.resolve(process.argv[2] ?? path.join(ROOT, 'dist', 'image'));
// Node 24 runs the TypeScript sources directly (type stripping): the bundle is the source tree, not a compile output.
const ENTRIES = ['package.json', 'package-lock.json', 'README.md', 'bin', 'src', 'migrations', 'views'];

async function main(): Promise<void> {
  const started = Date.now();
  await fs.rm(OUT, { recursive: true, force: true });
  await fs.mkdir(OUT, { recursive: true });
  for (const entry of ENTRIES) await fs.cp(path.join(ROOT, entry), path.join(OUT, entry), { recursive: true });

  // Exactly what `npm ci --omit=dev` keeps, taken from the installed tree (same lockfile, install scripts already run).
  const listed = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    .split('\n')
    .filter((p) => p.startsWith(path.join(ROOT, 'node_modules') + path.sep))
    .sort();
  const copied: string[] = [];
  for (const dir of listed) {
    if (copied.some((c) => dir.startsWith(c + path.sep))) continue; // nested node_modules came with their parent
    await fs.cp(dir, path.join(OUT, path.relative(ROOT, dir)), { recursive: true, verbatimSymlinks: true });
    copied.push(dir);
  }

  await smokeCheck();
  const size = execFileSync('du', ['-sh', OUT], { encoding: 'utf8' }).split('\t')[0];
  console.log(`bundle: ${path.relative(ROOT, OUT) || OUT} (${size}, ${copied.length} production packages) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

// Loads every dependency, source module and migration, then runs `help` (which imports every command), all
// with a guard that refuses anything resolved outside the bundle.
async function smokeCheck(): Promise<void> {
  const script = path.join(OUT, '.smoke-check.mjs');
  await fs.writeFile(
    script,
    `import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
const root = import.meta.dirname;
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
for (const dep of Object.keys(pkg.dependencies ?? {})) await import(dep);
const files = (dir) => fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => e.isDirectory() ? files(path.join(dir, e.name)) : [path.join(dir, e.name)]);
const modules = [...files(path.join(root, 'src')), ...files(path.join(root, 'migrations'))].filter((f) => f.endsWith('.ts') && f !== path.join(root, 'src', 'main.ts'));
for (const m of modules) await import(pathToFileURL(m).href);
console.log(\`smoke check: \${Object.keys(pkg.dependencies ?? {}).length} dependencies and \${modules.length} modules load from the bundle\`);
process.exit(0);
`,
  );
  const env = { ...process.env, IDMS_BUNDLE_ROOT: pathToFileURL(OUT).href + '/', NODE_OPTIONS: '' };
  const guard = ['--import', pathToFileURL(path.join(ROOT, 'scripts', 'bundle-guard.ts')).href];
  try {
    execFileSync(process.execPath, [...guard, script], { cwd: OUT, env, stdio: 'inherit' });
    const help = execFileSync(process.execPath, [...guard, path.join(OUT, 'src', 'main.ts'), 'help'], { cwd: OUT, env, encoding: 'utf8' });
    if (!help.includes('seal-idms')) throw new Error('`seal-idms help` from the bundle printed no usage');
  } finally {
    await fs.rm(script, { force: true });
  }
}

await main();
