// An apiserver outage on a private cluster: requests fail while it is down, and it comes back on the
// same address with the data it had. Uses its own cluster so the shared one never goes down.
import { jest } from '@jest/globals';
import {
  Cluster,
  ensureCluster,
  restartApiserver,
  startApiserver,
  stopApiserver,
  stopCluster,
} from '../harness/k8s.js';

jest.setTimeout(300_000);

let cluster: Cluster;

beforeAll(async () => {
  cluster = await ensureCluster({ name: `cnout${process.pid}` });
});

afterAll(async () => {
  if (cluster) await stopCluster(cluster);
});

test('objects survive an apiserver outage and clients reach it again at the same address', async () => {
  await cluster.kubectl(['create', 'configmap', 'before', '--from-literal=k=v']);

  await stopApiserver(cluster);
  await expect(cluster.kubectl(['get', 'configmap', 'before'], { timeoutMs: 15_000 })).rejects.toThrow(
    /refused|unable to connect/i,
  );

  await startApiserver(cluster);
  expect(await cluster.kubectl(['get', 'configmap', 'before', '-o', 'jsonpath={.data.k}'])).toBe('v');

  await restartApiserver(cluster);
  const again = await ensureCluster({ name: cluster.name });
  expect(again.server).toBe(cluster.server);
  expect((await cluster.kubectl(['get', '--raw', '/readyz'])).trim()).toBe('ok');
});
