/**
 * Every family's graph against its independent float64 forward (test/reference/*-f64.ts, written from
 * the Hugging Face modeling code): random-weight checkpoints with the family's real config fields,
 * dimensions scaled down and every feature switched on, logits compared for lengths 1, 7 and 200
 * and for a batch.
 */
import { describe, it } from 'node:test';
import { FAMILY_CASES } from '../../helpers/family-configs';
import { assertLogitsMatchReference } from '../../helpers/engine-logits';


describe('model families: engine logits against the float64 references', () => {
  for (const [name, { config, reference, renameTensor }] of Object.entries(FAMILY_CASES)) {
    it(`${name}: lengths 1, 7, 200 and a batch agree to 1e-4`, () => assertLogitsMatchReference(config, reference, renameTensor));
  }
});
