// castnet's layers, bottom to top. A source file in pkg/ or cmd/ may import only from its own folder
// and from folders listed BEFORE its own (eslint-plugin-boundaries enforces it in `make lint`, see
// eslint.config.mjs). Tests (*.test.ts) may also reach up: they exercise a layer through the ones
// above it. Where a folder and its subfolders are both listed, the subfolder is its own layer.
export const layers = [
  // Primitives: no castnet imports below them but each other.
  'pkg/base', // errorMessage, sleep, the Disposable lifecycle
  'pkg/log',
  'pkg/sys', // libc via koffi, syscall constants, socket options
  'pkg/netaddr',
  'pkg/netlink',
  // The API: lookup records, the lookup port, CR/record schemas.
  'pkg/lookup',
  // Protocols and state.
  'pkg/frame',
  'pkg/wire',
  'pkg/packet',
  'pkg/underlay',
  'pkg/igmp',
  'pkg/membership',
  'pkg/resolve',
  'pkg/cni',
  'pkg/ipam',
  'pkg/kubevirt',
  // Adapters: Kubernetes and the two lookup back-ends.
  'pkg/k8s',
  'pkg/lookup/embedded',
  'pkg/lookup/kubernetes',
  // Components.
  'pkg/endpoint',
  'pkg/agent/unicast',
  'pkg/agent/underlay', // the nftables filter of castnet's UDP ports
  'pkg/agent/cniserver',
  'pkg/agent/membership',
  'pkg/agent/dataplane',
  'pkg/agent/health',
  'pkg/agent',
  'pkg/controller',
  // Commands.
  'pkg/install',
  'pkg/lab',
  'pkg/cli',
  'cmd',
];
