// The repository's Dockerfile, parsed for tests that check it statically (no Docker engine runs here)
// and tests that check the images scripts/cluster/images.sh assembles run the same way.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from './cni.js';

export interface Instruction {
  stage: number;
  op: string;
  args: string;
}

/** Instructions with line continuations joined and comments dropped, tagged with their stage. */
export function parseDockerfile(text: string): {
  instructions: Instruction[];
  stages: Array<string | undefined>;
} {
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  const instructions: Instruction[] = [];
  const stages: Array<string | undefined> = [];
  for (const line of lines.map((l) => l.trim())) {
    if (!line || line.startsWith('#')) continue;
    const [, op, args] = /^(\S+)\s+(.*)$/.exec(line)!;
    if (op.toUpperCase() === 'FROM') stages.push(/\sAS\s+(\S+)$/i.exec(args)?.[1]);
    instructions.push({ stage: stages.length - 1, op: op.toUpperCase(), args });
  }
  return { instructions, stages };
}

/** How the final stage's image runs: its last USER, ENTRYPOINT (exec form) and WORKDIR. */
export function finalImageConfig(text: string): { user?: string; entrypoint?: string[]; workdir?: string } {
  const { instructions, stages } = parseDockerfile(text);
  const last = (op: string) =>
    instructions.filter((i) => i.stage === stages.length - 1 && i.op === op).pop()?.args;
  const entrypoint = last('ENTRYPOINT');
  return {
    user: last('USER'),
    entrypoint: entrypoint === undefined ? undefined : (JSON.parse(entrypoint) as string[]),
    workdir: last('WORKDIR'),
  };
}

export const dockerfileText = (): string => readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8');
