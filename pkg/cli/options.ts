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
