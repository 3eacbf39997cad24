import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { estimatePlan } from '../../engine/allocate/estimate';
import { makePlan } from '../../engine/allocate/make-plan';
import type { Plan } from '../../engine/allocate/plan';
import { PruneLensError } from '../../engine/errors';
import { METHOD_NAMES, UPDATE_NAMES } from '../../engine/prune/methods/catalog';
import { allocationRequest, calibrationRequest, pruneSpec, PRUNING_OPTIONS, runtime } from '../args';
import { defineCommand, print, singlePositional, table, timed, withProgress } from '../command';

export const plan = defineCommand({
  synopsis: [
    `[MODEL] --out PLAN.json [--allocation uniform|owl|besa] [--sparsity S] [--method ${METHOD_NAMES.join('|')}] [--update ${UPDATE_NAMES.join('|')}]
                 [--owl-m 5] [--owl-lambda 0.08] [--calib FILE] [--nsamples 128] [--seqlen 256] [--seed 0]
                 [--include GLOB,..] [--exclude GLOB,..] [--provider cpu] [--threads N] [--json]`,
  ],
  summary: 'Make a sparsity allocation (a plan file) without writing a model.',
  details: `The sequential loop runs as for pruning and measures every linear's block error at a ladder of
ratios around the target: the plan's error table, from which "prunelens estimate" prices hand edits.
Edit the plan's ratios, then "prunelens prune --plan PLAN.json".`,
  options: { ...PRUNING_OPTIONS, out: { type: 'string', arg: 'PLAN.json', help: 'where to write the plan (required)' } },
  async run(parsed, ctx) {
    const { values, positionals } = parsed;
    if (values.out === undefined) throw new PruneLensError('usage', 'plan needs --out PLAN.json');
    const out = path.resolve(values.out);
    const options = {
      model: singlePositional(positionals, 'MODEL'),
      spec: pruneSpec(parsed),
      allocation: allocationRequest(parsed),
      calibration: calibrationRequest(values),
      runtime: runtime(values),
    };
    const { result, seconds } = await timed(() => withProgress(ctx, (control) => makePlan({ ...options, ...control })));
    await writeAtomically(out, `${JSON.stringify(result, null, 2)}\n`);
    const estimate = estimatePlan(result).score;
    const json = { out, allocation: result.allocation, target: result.target, blocks: result.blocks, estimate, calibration: result.calibration, windows: result.statistics.errors?.windows, seconds };
    print(ctx, json, formatPlan(out, result, estimate, seconds));
  },
});

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

function formatPlan(out: string, p: Plan, estimate: number, seconds: number): string {
  const pct = (v: number): string => `${(100 * v).toFixed(1)}%`;
  const c = p.calibration;
  return table([
    ['plan', out],
    ['allocation', `${p.allocation} (${p.method} scores), target ${pct(p.target)}`],
    ...(c ? [['calibration', `${c.nsamples} x ${c.seqlen} tokens from ${c.file}, seed ${c.seed}${p.statistics.errors ? `; errors measured on ${p.statistics.errors.windows} windows` : ''}`] as [string, string]] : []),
    ['per block', p.blocks.map((b) => pct(b.sparsity)).join(' ')],
    ...(p.statistics.outlierRatios ? [['outliers', p.statistics.outlierRatios.map((r) => pct(r)).join(' ')] as [string, string]] : []),
    ['estimate', `${estimate.toFixed(4)} (summed relative block error; lower is better)`],
    ['time', `${seconds.toFixed(1)} s in all, loading and tokenizing included`],
  ]);
}
