// The crash hook's arming rules; the crash itself is tested with a real agent (test/endpoint/agent-crash.test.ts).
import { crashHookFromEnv } from './crash-hook.js';

describe('crashHookFromEnv', () => {
  it('is off without CASTNET_TEST_CRASH_AT', () => {
    expect(crashHookFromEnv({ CASTNET_TEST_HOOKS: '1' })).toBeUndefined();
    expect(crashHookFromEnv({})).toBeUndefined();
  });

  it('refuses the crash setting without the test gate', () => {
    expect(() => crashHookFromEnv({ CASTNET_TEST_CRASH_AT: 'veth' })).toThrow(
      'CASTNET_TEST_CRASH_AT: a test-only setting, honoured only with CASTNET_TEST_HOOKS=1',
    );
  });

  it('refuses an unknown step, listing the steps', () => {
    expect(() => crashHookFromEnv({ CASTNET_TEST_CRASH_AT: 'vet', CASTNET_TEST_HOOKS: '1' })).toThrow(
      'CASTNET_TEST_CRASH_AT: "vet" is not a step (one of reserved, ipam, veth, port, container, unlinked, ipam-released)',
    );
  });

  it('crashes at the armed step only', () => {
    const crashed: string[] = [];
    const hook = crashHookFromEnv({ CASTNET_TEST_CRASH_AT: 'port', CASTNET_TEST_HOOKS: '1' }, (s) =>
      crashed.push(s),
    );
    for (const step of ['reserved', 'veth', 'port', 'container', 'unlinked'] as const) hook!(step);
    expect(crashed).toEqual(['port']);
  });
});
