// The metrics sidecar waits for its port instead of crashing while another process holds it, as the
// previous pod's sidecar does during a rolling update on the node's network. Real sockets, loopback.
import { createServer, get, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serveAgentMetricsWhenFree } from './agent-metrics.js';
import { sleep } from '../base/async.js';

const listen = (s: Server, port = 0) =>
  new Promise<number>((resolve) =>
    s.listen(port, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)),
  );
// A fresh connection per request: a pooled keep-alive socket to the previous holder would be reset
// when it closes, failing the next request for a reason this test is not about.
const getText = (port: number, path: string) =>
  new Promise<string>((resolve, reject) =>
    get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
    }).on('error', reject),
  );
const close = (s: Server) => new Promise<void>((resolve) => s.close(() => resolve()));

it('binds its port once the previous holder lets go, answering /healthz', async () => {
  const previous = createServer((_, res) => res.end('previous\n'));
  const port = await listen(previous);
  let busy = 0;
  let bound!: () => void;
  const isBound = new Promise<void>((resolve) => (bound = resolve));
  const server = serveAgentMetricsWhenFree(
    '/nonexistent/stats.sock',
    '127.0.0.1',
    port,
    {
      onBusy: () => busy++,
      onBound: () => bound(),
      onError: (err) => {
        throw err;
      },
    },
    50,
  );
  try {
    while (busy < 2) await sleep(20);
    expect(await getText(port, '/healthz')).toBe('previous\n');
    await close(previous);
    await isBound;
    expect(await getText(port, '/healthz')).toBe('ok\n');
  } finally {
    if (previous.listening) await close(previous);
    await close(server);
  }
});
