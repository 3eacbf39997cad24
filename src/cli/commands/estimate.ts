import { estimatePlan } from '../../engine/allocate/estimate';
import { readPlan } from '../../engine/allocate/plan-file';
import { EMBEDDED_MODEL } from '../../engine/embedded';
import { PruneLensError } from '../../engine/errors';
import { Checkpoint } from '../../engine/io/checkpoint';
import { defineCommand, print, table } from '../command';

export const estimate = defineCommand({
  synopsis: ['PLAN.json [MODEL] [--json]'],
  summary: "Price a plan (edited or not) from its error table, in about a millisecond, without pruning.",
  details: `MODEL is the model the plan is for, as "prune MODEL --plan PLAN.json" takes it (the embedded model
by default); the plan is checked against it exactly as prune checks it, so a plan estimate accepts
is one prune accepts. A plan whose ratios differ from what its allocator wrote is reported as
"manual". The estimate is a summed relative block error: lower is better; it ranks plans, it does
not predict perplexity.`,
  options: {},
  async run({ positionals }, ctx) {
    if (positionals.length === 0 || positionals.length > 2) {
      throw new PruneLensError('usage', `expected PLAN.json and optionally MODEL, got ${positionals.length} argument(s)`);
    }
    const [file, model = EMBEDDED_MODEL] = positionals as [string, string?];
    const checkpoint = await Checkpoint.open(model);
    const plan = await readPlan(file, checkpoint.config).finally(() => checkpoint.close());
    const start = performance.now();
    const result = estimatePlan(plan);
    const ms = performance.now() - start;
    const pct = (v: number): string => `${(100 * v).toFixed(1)}%`;
    print(
      ctx,
      { plan: file, model: checkpoint.dir, allocation: plan.allocation, target: plan.target, blocks: plan.blocks.map((b) => b.sparsity), score: result.score, per_block: result.perBlock, milliseconds: ms },
      table([
        ['plan', `${file}: ${plan.allocation} allocation, ${pct(plan.target)} of the linear weights`],
        ['per block', plan.blocks.map((b) => pct(b.sparsity)).join(' ')],
        ['estimate', `${result.score.toFixed(4)} (summed relative block error; lower is better)`],
        ['per block', result.perBlock.map((v) => v.toFixed(4)).join(' ')],
        ['time', `${ms.toFixed(2)} ms`],
      ]),
    );
  },
});
