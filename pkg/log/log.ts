// Structured logs: one JSON object per line on stderr, so node agents' logs are machine-readable.

export type Level = 'debug' | 'info' | 'warn' | 'error';
export type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  /** A logger that adds `fields` to every line. */
  with(fields: Fields): Logger;
}

/** A logger that writes nothing (a component whose owner gave it none; tests). */
export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  with: () => silentLogger,
};

const ORDER: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** A logger for `component` writing lines at or above `minLevel` (env CASTNET_LOG_LEVEL, default info). */
export function createLogger(
  component: string,
  write: (line: string) => void = (line) => process.stderr.write(line),
  minLevel: Level = (process.env.CASTNET_LOG_LEVEL as Level | undefined) ?? 'info',
): Logger {
  const make = (base: Fields): Logger => {
    const emit = (level: Level) => (msg: string, fields?: Fields) => {
      if (ORDER[level] < (ORDER[minLevel] ?? ORDER.info)) return;
      const line = { time: new Date().toISOString(), level, component, msg, ...base, ...fields };
      write(JSON.stringify(line, errorReplacer) + '\n');
    };
    return {
      debug: emit('debug'),
      info: emit('info'),
      warn: emit('warn'),
      error: emit('error'),
      with: (fields) => make({ ...base, ...fields }),
    };
  };
  return make({});
}

/** Errors serialize as their message (JSON.stringify would give {}). */
function errorReplacer(_key: string, value: unknown): unknown {
  return value instanceof Error ? value.message : value;
}
