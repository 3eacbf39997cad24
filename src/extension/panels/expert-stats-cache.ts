import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { CalibrationRequest } from '../../engine/calibrate/calibration-data';
import type { ExpertStats } from '../../engine/experts/expert-stats';
import type { FileHashes } from '../file-hashes';

/**
 * Expert statistics per (checkpoint, calibration text, windows), kept in the extension's storage (never
 * in the checkpoint), so the heat map and the Model view show them again after a reload without a
 * calibration pass. Keyed by the sha256 of every file read, so an edited checkpoint or text is measured again.
 */
export class ExpertStatsCache {
  constructor(
    private readonly dir: string,
    private readonly hashes: FileHashes,
  ) {}

  async key(modelFiles: readonly string[], calibration: CalibrationRequest): Promise<string> {
    const [model, text] = await Promise.all([this.hashes.of(modelFiles), this.hashes.of([calibration.file])]);
    const { nsamples, seqlen, seed } = calibration;
    return createHash('sha256').update(JSON.stringify({ version: 1, model, text, nsamples, seqlen, seed })).digest('hex').slice(0, 32);
  }

  async read(key: string): Promise<ExpertStats | undefined> {
    const raw = await fs.readFile(this.file(key), 'utf8').catch(() => undefined);
    if (raw === undefined) return undefined;
    const stats = JSON.parse(raw) as Partial<ExpertStats>;
    return Array.isArray(stats.layers) && typeof stats.tokens === 'number' ? (stats as ExpertStats) : undefined;
  }

  async write(key: string, stats: ExpertStats): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true });
    const file = this.file(key);
    await fs.writeFile(`${file}.partial-${process.pid}`, JSON.stringify(stats));
    await fs.rename(`${file}.partial-${process.pid}`, file);
  }

  private file(key: string): string {
    return path.join(this.dir, `experts-${key}.json`);
  }
}
