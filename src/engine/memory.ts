import { readFileSync } from 'node:fs';

/**
 * Peak resident memory of this process so far, in MiB (the kernel's high-water mark, not a sample).
 * On Linux from /proc/self/status's VmHWM: getrusage's maxRSS carries over through exec the resident
 * size of the process that forked this one, so a CLI started by a large process (the bench held
 * 3.3 GB) reported at least that much whatever it used.
 */
export function peakRssMb(): number {
  const hwm = procStatusKb('VmHWM');
  return (hwm ?? process.resourceUsage().maxRSS) / 1024;
}

function procStatusKb(field: string): number | undefined {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}
