// Option value parsers shared by the castnet subcommands (commander's argParser callbacks).

/** Parses an integer flag value in [min, max]; the error names the flag, the value and the range. */
export function intOption(flag: string, min: number, max: number): (value: string) => number {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new Error(`${flag}: ${JSON.stringify(value)} must be an integer from ${min} to ${max}`);
    return n;
  };
}

/** Parses a number of seconds >= min (fractions allowed); the error names the flag and the value. */
export function secondsOption(flag: string, min: number): (value: string) => number {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < min)
      throw new Error(`${flag}: ${JSON.stringify(value)} must be a number of seconds >= ${min}`);
    return n;
  };
}

/** Parses host:port for the metrics listener; an empty host means all addresses. */
export function parseListenAddress(flag: string, value: string): { host: string; port: number } {
  const at = value.lastIndexOf(':');
  const port = Number(value.slice(at + 1));
  if (at < 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`${flag}: ${JSON.stringify(value)} must be host:port, e.g. :9402 or 127.0.0.1:9402`);
  }
  return { host: value.slice(0, at).replace(/^\[|\]$/g, '') || '0.0.0.0', port };
}
