// @kubernetes/client-node 1.x is ESM-only. Node >= 20.19 require()s it natively (bin/castnet works),
// but jest's module registry cannot on Node 20 ("Must use import to load ES Module"), and jest also
// replaces createRequire, so there is no way around it inside a test. This stand-in lets modules that
// import it load, and fails with the remedy when one of its exports is used. castnet's own code talks
// to the apiserver with pkg/k8s (kubeconfig.ts, client.ts, informer.ts) instead.
module.exports = new Proxy(
  {},
  {
    get(_target, prop) {
      if (prop === '__esModule' || typeof prop === 'symbol' || prop === 'then') return undefined;
      throw new Error(
        `@kubernetes/client-node.${String(prop)} is unavailable under jest on Node 20 (ESM-only package); ` +
          'use pkg/k8s/kubeconfig.ts (connectionFromKubeconfig) and pkg/k8s/client.ts (ApiClient)',
      );
    },
  },
);
