/**
 * Every MoE family's graph against its independent float64 forward (test/reference/moe-f64.ts, which
 * routes token by token as the Hugging Face code does): random-weight checkpoints, logits compared
 * for lengths 1, 7 and 200 and for a batch.
 */
import { describe, it } from 'node:test';
import { moeLogits } from '../../reference/moe-f64';
import { MOE_CASES } from '../../helpers/moe-configs';
import { assertLogitsMatchReference } from '../../helpers/engine-logits';


describe('MoE families: engine logits against the float64 references', () => {
  for (const [name, config] of Object.entries(MOE_CASES)) {
    it(`${name}: lengths 1, 7, 200 and a batch agree to 1e-4`, () => assertLogitsMatchReference(config, moeLogits));
  }
});
