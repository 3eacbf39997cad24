/** Peak resident memory of this process so far, in MiB (the kernel's high-water mark, not a sample). */
export function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}
