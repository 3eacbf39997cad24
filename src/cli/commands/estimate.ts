import { promises as fs } from 'node:fs';
import { estimatePlan } from '../../engine/allocate/estimate';
import type { Plan } from '../../engine/allocate/plan';
import { PruneLensError } from '../../engine/errors';
import { parse, print, singlePositional, table, type Command } from '../command';

export const estimate: Command = {
  usage: 'prunelens estimate PLAN.json [--json]',
  async run(args, ctx) {
    const { positionals } = parse(args, {});
    const file = singlePositional(positionals, 'PLAN.json', undefined);
    let plan: Plan;
    try {
      plan = JSON.parse(await fs.readFile(file, 'utf8')) as Plan;
    } catch (err) {
      throw new PruneLensError('usage', `cannot read the plan: ${(err as Error).message}`, file);
    }
    const start = performance.now();
    const result = estimatePlan(plan);
    const ms = performance.now() - start;
    print(ctx, { score: result.score, per_block: result.perBlock, milliseconds: ms }, table([
      ['estimate', `${result.score.toFixed(4)} (summed relative block error; lower is better)`],
      ['per block', result.perBlock.map((v) => v.toFixed(4)).join(' ')],
      ['time', `${ms.toFixed(2)} ms`],
    ]));
  },
};
