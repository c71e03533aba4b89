import { AF_NETLINK, SOCK_CLOEXEC, SOCK_RAW } from './constants.js';
import { check, libc, SysError, inNetns } from './libc.js';

describe('libc bindings', () => {
  it('opens and closes a netlink socket', () => {
    const fd = check('socket', libc().socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0) as number);
    expect(fd).toBeGreaterThan(2);
    expect(libc().close(fd)).toBe(0);
  });

  it('names errno on failure', () => {
    expect(() => check('close', libc().close(-1) as number)).toThrow(new SysError('close', 9));
    expect(() => check('close', libc().close(-1) as number)).toThrow(/close: EBADF/);
  });

  it('refuses a namespace path that does not exist and stays in its own', () => {
    expect(() => inNetns('/nonexistent/ns', () => 1)).toThrow(/open \/nonexistent\/ns: ENOENT/);
  });
});
