// What the benchmarks read from /proc about their processes.
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second (sysconf(_SC_CLK_TCK) is 100 on every Linux this runs on). */
export const CLK_TCK = 100;

/** utime + stime of a process, µs (includes softirq work done in its context). */
export function processCpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK;
}

/** Current and peak resident set of a process, MB. */
export function processRssMB(pid: number): { rssMB: number; peakRssMB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rssMB: kb('VmRSS') / 1024, peakRssMB: kb('VmHWM') / 1024 };
}

/** The kernel's per-CPU softirq threads: forwarding work the kernel defers lands there. */
export function ksoftirqdPids(): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return readFileSync(`/proc/${d}/comm`, 'utf8').startsWith('ksoftirqd/');
      } catch {
        return false;
      }
    })
    .map(Number);
}
