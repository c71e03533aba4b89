// castnet-cni's own answers, which need no agent: VERSION, undecodable or oversized input, and each
// verb's behaviour when the agent's socket is missing (ADD/CHECK/GC retry later, DEL succeeds,
// STATUS reports the plugin unavailable).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { invokeCni } from '../harness/cni.js';

const dir = mkdtempSync(path.join(tmpdir(), 'cnfwd-'));
const missingSocket = path.join(dir, 'agent.sock');
const conf = { cniVersion: '1.1.0', name: 'blue', type: 'castnet', agentSocket: missingSocket };
const attachment = {
  CNI_CONTAINERID: 'c1',
  CNI_NETNS: '/run/netns/none',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin',
};

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('castnet-cni without an agent', () => {
  it('answers VERSION itself with the supported versions', async () => {
    const out = await invokeCni({ command: 'VERSION', stdin: { cniVersion: '1.0.0' } });
    expect(out.status).toBe(0);
    expect(out.json).toEqual({ cniVersion: '1.1.0', supportedVersions: ['0.4.0', '1.0.0', '1.1.0'] });
  });

  it.each([
    ['ADD', 11],
    ['CHECK', 11],
    ['GC', 11],
    ['STATUS', 50],
  ])('%s fails with code %d naming the missing socket', async (command, code) => {
    const out = await invokeCni({ command, stdin: conf, env: attachment });
    expect(out.status).toBe(1);
    expect(out.json).toMatchObject({ cniVersion: '1.1.0', code });
    expect(out.json?.msg).toContain(`castnet agent not reachable at ${missingSocket}`);
    expect(out.json?.details).toContain('no such file or directory');
  });

  it('DEL succeeds: the agent cleans up when it reconciles at start', async () => {
    const out = await invokeCni({ command: 'DEL', stdin: conf, env: attachment });
    expect(out.status).toBe(0);
    expect(out.stdout).toBe('');
    expect(out.stderr).toContain('DEL deferred');
  });

  it('answers in the config version', async () => {
    const out = await invokeCni({ command: 'ADD', stdin: { ...conf, cniVersion: '0.4.0' }, env: attachment });
    expect(out.json).toMatchObject({ cniVersion: '0.4.0', code: 11 });
  });

  it.each([
    ['malformed JSON', 6, '{"cniVersion": "1.1.0",', 'not a valid JSON object'],
    ['empty stdin', 6, '', 'not a valid JSON object'],
    ['a JSON array', 6, '[]', 'not a valid JSON object'],
    [
      'oversized stdin',
      7,
      JSON.stringify({ ...conf, pad: 'x'.repeat(1 << 20) }),
      'exceeds the 1048576-byte limit',
    ],
  ])('rejects %s with code %d', async (_what, code, stdin, msg) => {
    const out = await invokeCni({ command: 'ADD', stdin, env: attachment });
    expect(out.status).toBe(1);
    expect(out.json).toMatchObject({ code });
    expect(out.json?.msg).toContain('stdin: ');
    expect(out.json?.msg).toContain(msg);
  });

  it('rejects a missing CNI_COMMAND with code 4', async () => {
    const out = await invokeCni({ command: '', stdin: conf });
    expect(out.json).toMatchObject({ code: 4, msg: 'CNI_COMMAND: required but not set' });
  });
});
