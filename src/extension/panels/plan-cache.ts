import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { parsePlan, type Allocation, type Plan } from '../../engine/allocate/plan';
import type { CalibrationRequest } from '../../engine/calibrate/calibration-data';
import type { ModelConfig } from '../../engine/model/config';
import type { Method } from '../../engine/prune/spec';
import { ALLOCATION_KINDS } from '../../shared/protocol';

export type PlanSet = Record<Allocation, Plan>;

export interface PlanRequest {
  method: Method;
  target: number;
  calibration: CalibrationRequest;
}

/** Plan sets kept; one is a few kilobytes per decoder block. */
const KEEP = 24;

/**
 * Plans on disk, keyed by what made them: a revived panel (window reload) gets its error tables back
 * without another calibration pass. The key covers the request and the size and modification time of
 * every file read, so a changed checkpoint or calibration text is planned again, never served stale.
 */
export class PlanCache {
  constructor(private readonly dir: string) {}

  /** `model` is a checkpoint's folder and weight files (a Checkpoint will do). */
  async key(model: { dir: string; files: string[] }, request: PlanRequest): Promise<string> {
    const files = [path.join(model.dir, 'config.json'), ...model.files, request.calibration.file];
    const stamps = await Promise.all(
      files.map(async (file) => {
        const s = await fs.stat(file).catch(() => undefined);
        return [file, s?.size ?? null, s?.mtimeMs ?? null];
      }),
    );
    return createHash('sha256').update(JSON.stringify({ version: 2, request, stamps })).digest('hex').slice(0, 32);
  }

  /** A cached set and the seconds it took to make, or undefined when missing or not usable for this model. */
  async read(key: string, cfg: ModelConfig): Promise<{ plans: PlanSet; seconds: number } | undefined> {
    const file = this.file(key);
    try {
      const raw = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>;
      const plans = Object.fromEntries(ALLOCATION_KINDS.map((kind) => [kind, parsePlan(raw[kind], cfg, file)])) as PlanSet;
      const seconds = typeof raw.seconds === 'number' ? raw.seconds : 0;
      return ALLOCATION_KINDS.every((kind) => plans[kind].statistics.errors) ? { plans, seconds } : undefined;
    } catch {
      return undefined;
    }
  }

  async write(key: string, plans: PlanSet, seconds: number): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true });
    const file = this.file(key);
    const partial = `${file}.partial-${process.pid}`;
    await fs.writeFile(partial, JSON.stringify({ ...plans, seconds }));
    await fs.rename(partial, file);
    await this.trim();
  }

  private file(key: string): string {
    return path.join(this.dir, `plans-${key}.json`);
  }

  private async trim(): Promise<void> {
    const names = (await fs.readdir(this.dir)).filter((n) => /^plans-[0-9a-f]+\.json$/.test(n));
    if (names.length <= KEEP) return;
    const dated = await Promise.all(names.map(async (n) => ({ n, t: (await fs.stat(path.join(this.dir, n))).mtimeMs })));
    dated.sort((a, b) => b.t - a.t);
    await Promise.all(dated.slice(KEEP).map(({ n }) => fs.rm(path.join(this.dir, n), { force: true })));
  }
}
