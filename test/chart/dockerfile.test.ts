// The Dockerfile, checked statically (no Docker engine runs here): every stage it copies from exists,
// every COPY source is in the repository and not excluded by .dockerignore, and the image's layout
// holds what the chart runs (/opt/castnet/bin/castnet and what it starts) once `make build` has built
// the same artifacts the stages build.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../harness/cni.js';
import { dockerfileText, finalImageConfig, parseDockerfile } from '../harness/dockerfile.js';

/** .dockerignore as an ordered list of (negated?, regex) rules; the last matching rule wins. */
function ignoredBy(text: string): (file: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = (negate ? l.slice(1) : l).replace(/\/$/, '');
      const re = pattern
        .split('/')
        .map((part) =>
          part === '**'
            ? '.*'
            : part
                .replace(/[.+^${}()|[\]]/g, '\\$&')
                .replace(/\*/g, '[^/]*')
                .replace(/\?/g, '[^/]'),
        )
        .join('/');
      // A directory rule covers everything below it.
      return { negate, re: new RegExp(`^${re}(/.*)?$`) };
    });
  return (file) => {
    let ignored = false;
    for (const r of rules) if (r.re.test(file)) ignored = !r.negate;
    return ignored;
  };
}

const dockerfile = dockerfileText();
const { instructions, stages } = parseDockerfile(dockerfile);
const ignored = ignoredBy(readFileSync(path.join(repoRoot, '.dockerignore'), 'utf8'));
// Each COPY with the WORKDIR its destination is relative to.
const copies: Array<{ stage: number; from?: string; sources: string[]; dest: string }> = [];
let workdir = '/';
for (const i of instructions) {
  if (i.op === 'FROM') workdir = '/';
  if (i.op === 'WORKDIR') workdir = path.resolve(workdir, i.args);
  if (i.op !== 'COPY') continue;
  const words = i.args.split(/\s+/);
  const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
  const paths = words.filter((w) => !w.startsWith('--'));
  copies.push({
    stage: i.stage,
    from,
    sources: paths.slice(0, -1),
    dest: path.resolve(workdir, paths[paths.length - 1]),
  });
}
const finalStage = stages.length - 1;

// Where each build stage's outputs come from in the repository after `make build` (same commands).
const stageOutputs: Record<string, (p: string) => string> = {
  'build-ts': (p) => path.relative('/src', p),
  'build-cni': (p) => (p === '/out/castnet-cni' ? 'bin/castnet-cni' : `unknown build-cni output ${p}`),
};

test('the build has named stages and the final image is node 20', () => {
  expect(stages).toEqual(['build-ts', 'build-cni', undefined]);
  const froms = instructions.filter((i) => i.op === 'FROM').map((i) => i.args);
  expect(froms[finalStage]).toMatch(/^node:20-/);
});

test('every COPY --from names an earlier stage', () => {
  for (const c of copies.filter((c) => c.from)) {
    const index = stages.indexOf(c.from);
    // -1 (no such stage) and a later stage both fail, with the COPY in the message.
    expect({ copy: c, earlierStage: index >= 0 && index < c.stage }).toEqual({ copy: c, earlierStage: true });
  }
});

test('every COPY source from the context exists and is not excluded by .dockerignore', () => {
  const fromContext = copies.filter((c) => !c.from).flatMap((c) => c.sources);
  expect(fromContext.length).toBeGreaterThan(5);
  for (const src of fromContext) {
    const rel = src.replace(/\/$/, '');
    expect({ src, exists: existsSync(path.join(repoRoot, rel)) }).toEqual({ src, exists: true });
    expect({ src, ignored: ignored(rel) }).toEqual({ src, ignored: false });
  }
  // The TypeScript build reads nothing the context leaves out.
  expect(ignored('pkg/install/cli.ts')).toBe(false);
  expect(ignored('pkg/install/cli.test.ts')).toBe(true);
  expect(ignored('node_modules/yaml/package.json')).toBe(true);
  expect(ignored('.cache/bin/helm')).toBe(true);
});

test('the image holds what the chart runs: /opt/castnet/bin/{castnet,castnet-cni} and the program castnet starts', () => {
  // The final image's files, as paths into the repository after `make build`.
  const image = new Map<string, string>();
  for (const c of copies.filter((c) => c.stage === finalStage)) {
    for (const src of c.sources) {
      const repoPath = c.from ? stageOutputs[c.from](src) : src;
      image.set(c.dest, repoPath.replace(/\/$/, ''));
    }
  }
  const inImage = (file: string): string | undefined => {
    for (const [dest, repo] of image) {
      if (file === dest) return path.join(repoRoot, repo);
      if (file.startsWith(dest + '/')) return path.join(repoRoot, repo, file.slice(dest.length + 1));
    }
    return undefined;
  };
  const entrypoint = finalImageConfig(dockerfile).entrypoint![0];
  expect(entrypoint).toBe('/opt/castnet/bin/castnet');
  const chartCommands = readFileSync(path.join(repoRoot, 'deploy/castnet-primary.yaml'), 'utf8')
    .concat(readFileSync(path.join(repoRoot, 'deploy/castnet-node-cleanup.yaml'), 'utf8'))
    .match(/\/opt\/castnet\/[\w/.-]+/g)!;
  for (const file of new Set([entrypoint, ...chartCommands, '/opt/castnet/bin/castnet-cni'])) {
    const source = inImage(file);
    expect({ file, source: source && existsSync(source) }).toEqual({ file, source: true });
  }
  // bin/castnet starts node on ../dist/cmd/castnet/main.js, with its modules beside it.
  const launcher = readFileSync(inImage('/opt/castnet/bin/castnet')!, 'utf8');
  const mainJs = /\$here\/(\.\.\/dist\/[\w/.-]+)/.exec(launcher)![1];
  expect(existsSync(inImage(path.resolve('/opt/castnet/bin', mainJs))!)).toBe(true);
  expect(existsSync(inImage('/opt/castnet/node_modules/commander/package.json')!)).toBe(true);
  // install-cni's default source, resolved from the compiled module's place in the image.
  expect(
    existsSync(inImage(path.resolve('/opt/castnet/dist/pkg/install', '../../../bin/castnet-cni'))!),
  ).toBe(true);
});
