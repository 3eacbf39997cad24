import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { estimatePlan } from '../../engine/allocate/estimate';
import { makePlan } from '../../engine/allocate/make-plan';
import type { Plan } from '../../engine/allocate/plan';
import { PruneLensError } from '../../engine/errors';
import { allocationRequest, calibrationRequest, pruneSpec, PRUNING_OPTIONS, runtime } from '../args';
import { parse, print, singlePositional, table, withProgress, type Command } from '../command';

export const plan: Command = {
  usage: `prunelens plan [MODEL] --out PLAN.json [--allocation uniform|owl|besa] [--sparsity S]
                 [--method magnitude|wanda|sparsegpt|alps] [--update admm] [--owl-m 5] [--owl-lambda 0.08]
                 [--calib FILE] [--nsamples 128] [--seqlen 256] [--seed 0]
                 [--include GLOB,..] [--exclude GLOB,..] [--provider cpu] [--threads N] [--json]`,
  async run(args, ctx) {
    const { values, positionals } = parse(args, { ...PRUNING_OPTIONS, out: { type: 'string' } });
    if (values.out === undefined) throw new PruneLensError('usage', 'plan needs --out PLAN.json');
    const out = path.resolve(values.out);
    const options = {
      model: singlePositional(positionals, 'MODEL'),
      spec: pruneSpec(values),
      allocation: allocationRequest(values),
      calibration: calibrationRequest(values),
      runtime: runtime(values),
    };
    const result = await withProgress(ctx, (control) => makePlan({ ...options, ...control }));
    await writeAtomically(out, `${JSON.stringify(result, null, 2)}\n`);
    const estimate = estimatePlan(result).score;
    print(ctx, { out, allocation: result.allocation, target: result.target, blocks: result.blocks, estimate }, formatPlan(out, result, estimate));
  },
};

/** The plan appears complete or not at all. */
async function writeAtomically(file: string, content: string): Promise<void> {
  const partial = `${file}.partial-${process.pid}`;
  try {
    await fs.writeFile(partial, content);
    await fs.rename(partial, file);
  } catch (err) {
    await fs.rm(partial, { force: true });
    throw new PruneLensError('output', `cannot write the plan: ${(err as Error).message}`, file);
  }
}

function formatPlan(out: string, p: Plan, estimate: number): string {
  const pct = (v: number): string => `${(100 * v).toFixed(1)}%`;
  return table([
    ['plan', out],
    ['allocation', `${p.allocation} (${p.method} scores), target ${pct(p.target)}`],
    ['per block', p.blocks.map((b) => pct(b.sparsity)).join(' ')],
    ...(p.statistics.outlierRatios ? [['outliers', p.statistics.outlierRatios.map((r) => pct(r)).join(' ')] as [string, string]] : []),
    ['estimate', `${estimate.toFixed(4)} (summed relative block error; lower is better)`],
  ]);
}
