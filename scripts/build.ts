// `npm run build`: the publishable packages and the container image bundle.
//   dist/                      the server package (what `npm pack` ships: see `files` in package.json): the sources
//                              compiled by tsc (tsconfig.build.json) to dist/src, dist/migrations and dist/bin, plus
//                              dist/views and the OpenAPI files next to their modules, so every path a module computes
//                              from import.meta.url (../../views/, ../../migrations/, ./openapi.yaml) holds as in src/
//   packages/verify/dist/      the token validation kit @seal-idms/verify (JavaScript + .d.ts)
//   dist/image/                what the Dockerfile copies: the source tree (run by Node 24's type stripping) and
//                              the production node_modules, smoke-checked so that every module loads from inside it
// `--package` (the `prepack` script) builds the server package alone and checks that its CLI starts; with `--out <dir>`
// (a directory inside the repository, so that the modules resolve node_modules) it builds there instead of dist/ (the
// benchmark runs the package as installed without racing a build of dist/).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = path.resolve(import.meta.dirname, '..');
const packageOnly = process.argv.includes('--package');
const outAt = process.argv.indexOf('--out');
const DIST = outAt > 0 && packageOnly ? path.resolve(process.argv[outAt + 1] ?? '') : path.join(ROOT, 'dist');
if (!DIST.startsWith(ROOT + path.sep)) throw new Error(`--out ${DIST}: the build must lie inside ${ROOT} to resolve its dependencies`);
const IMAGE = path.join(DIST, 'image');
const KIT = path.join(ROOT, 'packages', 'verify');
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
// Progress goes to stderr: npm passes a prepack script's stdout into the output of `npm pack --json`.
const log = (line: string) => console.error(line);

async function main(): Promise<void> {
  const started = Date.now();
  await buildServer();
  if (!packageOnly) {
    await buildKit();
    await buildImage();
  }
  log(`build: done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

async function buildServer(): Promise<void> {
  await fs.rm(DIST, { recursive: true, force: true });
  tsc(path.join(ROOT, 'tsconfig.build.json'), ['--outDir', DIST]);
  await fs.cp(path.join(ROOT, 'views'), path.join(DIST, 'views'), { recursive: true });
  // Files the modules read at runtime (the OpenAPI documents under src/provisioning/): every non-TypeScript file in src/.
  const assets = (await fs.readdir(path.join(ROOT, 'src'), { recursive: true, withFileTypes: true })).filter((e) => e.isFile() && !e.name.endsWith('.ts'));
  for (const a of assets) {
    const rel = path.relative(ROOT, path.join(a.parentPath, a.name));
    await fs.cp(path.join(ROOT, rel), path.join(DIST, rel));
  }
  const help = execFileSync(process.execPath, [path.join(DIST, 'bin', 'seal-idms.js'), 'help'], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  if (!help.includes('seal-idms')) throw new Error('`seal-idms help` from dist/ printed no usage');
  log(`server package: ${path.relative(ROOT, DIST)}/ (${du(DIST)}, ${assets.length} runtime file(s) from src/ besides the modules)`);
}

async function buildKit(): Promise<void> {
  await fs.rm(path.join(KIT, 'dist'), { recursive: true, force: true });
  tsc(path.join(KIT, 'tsconfig.json'));
  log(`@seal-idms/verify: packages/verify/dist/ (${du(path.join(KIT, 'dist'))})`);
}

// Fails the build on a type error: a package is never published with declarations that do not match its code.
function tsc(project: string, extra: string[] = []): void {
  try {
    execFileSync(process.execPath, [TSC, '-p', project, ...extra], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const out = (err as { stdout?: string }).stdout ?? '';
    throw new Error(`tsc -p ${path.relative(ROOT, project)} failed:\n${out}`, { cause: err });
  }
}

// Node 24 runs the TypeScript sources directly (type stripping): the image bundle is the source tree, not the
// compiled package, so stack traces in production point at the real files (docs/deploy.md).
const IMAGE_ENTRIES = ['package.json', 'package-lock.json', 'README.md', 'bin', 'src', 'migrations', 'views'];

async function buildImage(): Promise<void> {
  await fs.mkdir(IMAGE, { recursive: true });
  for (const entry of IMAGE_ENTRIES) await fs.cp(path.join(ROOT, entry), path.join(IMAGE, entry), { recursive: true });

  // Exactly what `npm ci --omit=dev` keeps, taken from the installed tree (same lockfile, install scripts already run).
  // Workspace packages (the kit) are links into packages/ that the server does not import: they are left out.
  const listed = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    .split('\n')
    .filter((p) => p.startsWith(path.join(ROOT, 'node_modules') + path.sep))
    .sort();
  const copied: string[] = [];
  for (const dir of listed) {
    if (copied.some((c) => dir.startsWith(c + path.sep))) continue; // nested node_modules came with their parent
    if ((await fs.lstat(dir)).isSymbolicLink()) continue;
    await fs.cp(dir, path.join(IMAGE, path.relative(ROOT, dir)), { recursive: true, verbatimSymlinks: true });
    copied.push(dir);
  }

  await smokeCheck();
  log(`image bundle: dist/image (${du(IMAGE)}, ${copied.length} production packages)`);
}

// Loads every dependency, source module and migration, then runs `help` (which imports every command), all
// with a guard that refuses anything resolved outside the bundle.
async function smokeCheck(): Promise<void> {
  const script = path.join(IMAGE, '.smoke-check.mjs');
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
  const env = { ...process.env, IDMS_BUNDLE_ROOT: pathToFileURL(IMAGE).href + '/', NODE_OPTIONS: '' };
  const guard = ['--import', pathToFileURL(path.join(ROOT, 'scripts', 'bundle-guard.ts')).href];
  try {
    execFileSync(process.execPath, [...guard, script], { cwd: IMAGE, env, stdio: ['ignore', process.stderr, process.stderr] });
    const help = execFileSync(process.execPath, [...guard, path.join(IMAGE, 'src', 'main.ts'), 'help'], { cwd: IMAGE, env, encoding: 'utf8' });
    if (!help.includes('seal-idms')) throw new Error('`seal-idms help` from the bundle printed no usage');
  } finally {
    await fs.rm(script, { force: true });
  }
}

function du(dir: string): string {
  return execFileSync('du', ['-sh', dir], { encoding: 'utf8' }).split('\t')[0]!;
}

await main();
