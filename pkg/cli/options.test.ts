import { Command } from 'commander';
import { intOption } from './options.js';

describe('intOption', () => {
  const mtu = intOption('--mtu', 576, 9000);

  it('takes integers within the range, bounds included', () => {
    expect([mtu('576'), mtu('1500'), mtu('9000')]).toEqual([576, 1500, 9000]);
  });

  it.each(['575', '9001', '1500.5', 'big', ''])(
    'rejects %j naming the flag, the value and the range',
    (v) => {
      expect(() => mtu(v)).toThrow(`--mtu: ${JSON.stringify(v)} must be an integer from 576 to 9000`);
    },
  );

  it('is what a command line with a bad value reports', () => {
    const program = new Command()
      .exitOverride()
      .configureOutput({ writeErr: () => {} })
      .option('--mtu <bytes>', 'MTU', mtu);
    expect(() => program.parse(['--mtu', '70000'], { from: 'user' })).toThrow(
      '--mtu: "70000" must be an integer from 576 to 9000',
    );
  });
});
