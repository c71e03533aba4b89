// The agent's socket API (docs/agent-api.md) spoken directly, for what castnet-cni never sends:
// other paths and methods, bodies that are not a request, oversized bodies, VERSION and result
// versions as the agent renders them.
import { request } from 'node:http';
import { TestAgent } from '../harness/agent.js';
import { addNetns, delNetns, netnsPath, netnsTag } from '../harness/netns.js';

const tag = netnsTag('api');
const RED = { name: 'red', id: 79, subnets: ['10.79.0.0/16'], mtu: 1400, multicast: true, broadcast: true };
let agent: TestAgent;
const podNs = `${tag}p`;

interface Answer {
  status: number;
  body: Record<string, unknown> | undefined;
}

function call(method: string, path: string, body: string | Buffer = ''): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath: agent.socket, method, path, headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined }),
        );
      },
    );
    // The agent may answer an oversized body before reading all of it.
    req.on('error', (err: NodeJS.ErrnoException) =>
      err.code === 'EPIPE' || err.code === 'ECONNRESET' ? undefined : reject(err),
    );
    req.end(body);
  });
}

const cni = (command: string, stdin: object, env: Record<string, string> = {}) =>
  call('POST', '/v1/cni', JSON.stringify({ command, env, stdin: JSON.stringify(stdin) }));

beforeAll(async () => {
  agent = await TestAgent.start({ tag, networks: [RED] });
  await addNetns(podNs);
}, 60000);

afterAll(async () => {
  await agent?.destroy();
  await delNetns(podNs);
});

describe('the agent socket API', () => {
  it('answers the readiness probe', async () => {
    expect(await call('GET', '/v1/healthz')).toEqual({
      status: 200,
      body: { status: 'ok', instance: expect.stringMatching(/^[0-9a-f-]{36}$/) as unknown },
    });
  });

  it('refuses a handover without a data plane to hand over, and keeps serving', async () => {
    const answer = await call('POST', '/v1/handover');
    expect(answer.status).toBe(404);
    expect(answer.body).toMatchObject({ code: 7, msg: 'this agent cannot hand over (no data plane)' });
    expect((await call('GET', '/v1/healthz')).status).toBe(200);
  });

  it('answers only POST /v1/cni', async () => {
    const answer = await call('GET', '/v1/cni');
    expect(answer.status).toBe(404);
    expect(answer.body).toMatchObject({ code: 7, msg: 'no such endpoint: GET /v1/cni (want POST /v1/cni)' });
  });

  it('rejects a body that is not JSON (code 6) or not a request (code 6, naming the field)', async () => {
    expect(await call('POST', '/v1/cni', '{')).toMatchObject({
      status: 400,
      body: { code: 6, msg: 'request body is not valid JSON' },
    });
    const answer = await call('POST', '/v1/cni', JSON.stringify({ command: 'ADD', env: {} }));
    expect(answer).toMatchObject({ status: 400, body: { code: 6 } });
    expect(answer.body?.msg).toBe('invalid agent API request: stdin: is required');
  });

  it('rejects an oversized body with code 7', async () => {
    const answer = await call('POST', '/v1/cni', Buffer.alloc(9 << 20, 0x20));
    expect(answer).toMatchObject({ status: 413, body: { code: 7 } });
    expect(answer.body?.msg).toContain('request body exceeds');
  });

  it('answers VERSION', async () => {
    expect(await cni('VERSION', {})).toMatchObject({
      status: 200,
      body: { cniVersion: '1.1.0', supportedVersions: ['0.4.0', '1.0.0', '1.1.0'] },
    });
  });

  it('renders the ADD result in the config version and answers DEL with no content', async () => {
    const env = { CNI_CONTAINERID: 'api-1', CNI_NETNS: netnsPath(podNs), CNI_IFNAME: 'eth0' };
    const conf = { cniVersion: '0.4.0', name: 'red', type: 'castnet' };
    const added = await cni('ADD', conf, env);
    expect(added.status).toBe(200);
    expect(added.body).toMatchObject({
      cniVersion: '0.4.0',
      ips: [{ version: '4', address: expect.stringMatching(/^10\.79\./) }],
    });
    expect(await cni('DEL', conf, env)).toEqual({ status: 204, body: undefined });
  });
});
