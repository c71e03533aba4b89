// Turns the Ginkgo JSON report of e2e.test into bench/results/e2e-primary.json:
// { passed, failed, skipped, tests: [{ name, result, reason }] } over the tests the selection file
// chose (scripts/cluster/e2e-primary.sh), each skip with its reason: the selection's, or the one the
// test gave when it skipped itself at run time. Tests the selection never chose are left out.
// castnet's own checks run beside it (extra.jsonl: one {name, result, reason} per line) are added.
// Usage: node e2e-report.mjs <selection.txt> <ginkgo-report.json> <out.json> [extra.jsonl]
import console from 'node:console';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import process from 'node:process';

const [selectionFile, reportFile, outFile, extraFile] = process.argv.slice(2);
const focus = [];
const skips = [];
for (const [i, raw] of readFileSync(selectionFile, 'utf8').split('\n').entries()) {
  const line = raw.trim();
  if (!line || line.startsWith('#')) continue;
  const m = /^(focus|skip) (.+)$/.exec(line);
  if (!m)
    throw new Error(
      `${selectionFile}:${i + 1}: expected "focus <regex>" or "skip <regex> | <reason>", got ${JSON.stringify(line)}`,
    );
  if (m[1] === 'focus') focus.push(new RegExp(m[2]));
  else {
    const [re, reason] = m[2].split(' | ');
    if (!reason) throw new Error(`${selectionFile}:${i + 1}: a skip needs " | <reason>"`);
    skips.push({ re: new RegExp(re.trim()), reason: reason.trim() });
  }
}

const suites = JSON.parse(readFileSync(reportFile, 'utf8'));
const tests = [];
for (const suite of suites)
  for (const s of suite.SpecReports ?? []) {
    if (s.LeafNodeType !== 'It') continue;
    const name = [...(s.ContainerHierarchyTexts ?? []), s.LeafNodeText].join(' ');
    if (!focus.some((re) => re.test(name))) continue;
    const skip = skips.find((k) => k.re.test(name));
    if (s.State === 'passed') tests.push({ name, result: 'passed', reason: '' });
    else if (s.State === 'skipped')
      tests.push({
        name,
        result: 'skipped',
        // A test the selection chose that never started: the run was interrupted (its time limit).
        reason:
          skip?.reason ?? ((s.Failure?.Message ?? '').trim() || 'not run: the run ended before it started'),
      });
    else
      tests.push({
        name,
        result: 'failed',
        reason: `${s.State}: ${(s.Failure?.Message ?? '').trim().split('\n').slice(0, 3).join(' ')}`.slice(
          0,
          600,
        ),
      });
  }
if (extraFile && existsSync(extraFile))
  for (const line of readFileSync(extraFile, 'utf8').split('\n'))
    if (line.trim()) tests.push(JSON.parse(line));
tests.sort((a, b) => a.name.localeCompare(b.name));
const count = (r) => tests.filter((t) => t.result === r).length;
const out = { passed: count('passed'), failed: count('failed'), skipped: count('skipped'), tests };
// The benchmark (bench/e2e-primary) writes its figures into the same file: keep them.
const before = existsSync(outFile) ? JSON.parse(readFileSync(outFile, 'utf8')) : {};
if (before.bench) out.bench = before.bench;
// A narrowed rerun (CASTNET_E2E_FOCUS, e2e-primary.sh sets CASTNET_E2E_RERUN=1) replaces only the
// results of the tests it ran: every other test keeps the result of the run before.
if (process.env.CASTNET_E2E_RERUN === '1' && Array.isArray(before.tests)) {
  const ran = new Map(out.tests.filter((t) => !t.reason.startsWith('not run')).map((t) => [t.name, t]));
  out.tests = before.tests.map((t) => ran.get(t.name) ?? t);
  for (const t of ran.values()) if (!before.tests.some((b) => b.name === t.name)) out.tests.push(t);
  for (const r of ['passed', 'failed', 'skipped']) out[r] = out.tests.filter((t) => t.result === r).length;
}
writeFileSync(outFile, JSON.stringify(out, null, 2) + '\n');
console.log(`e2e-primary: ${out.passed} passed, ${out.failed} failed, ${out.skipped} skipped -> ${outFile}`);
