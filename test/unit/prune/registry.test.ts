import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PRUNING_OPTIONS } from '../../../src/cli/args';
import { renderReport } from '../../../src/engine/export/report';
import type { PruneRecord } from '../../../src/engine/export/record';
import { methodOf, methods, needsCalibration, parseMethod, parseUpdate, statisticOf, UPDATE_NAMES } from '../../../src/engine/prune/methods';
import { METHOD_LABELS, METHOD_NAMES } from '../../../src/engine/prune/methods/catalog';
import { STATISTICS } from '../../../src/engine/prune/methods/method';
import { methodItems } from '../../../src/extension/prune/prune-options';
import { isFromWebview, METHOD_LABELS as PROTOCOL_LABELS, PLAN_METHODS } from '../../../src/shared/protocol';
import { cli } from '../../helpers/cli';

/** Every list of methods a person sees is derived from the registry: none may drift from it. */
describe('the method registry and the lists derived from it', () => {
  const names = methods().map((m) => m.name);

  it('holds one method per catalog name, in the catalog order, each under its own name', () => {
    assert.deepEqual(names, METHOD_NAMES);
    assert.deepEqual(Object.keys(METHOD_LABELS), METHOD_NAMES);
    for (const name of METHOD_NAMES) {
      assert.equal(methodOf(name).name, name);
      assert.ok(STATISTICS.includes(methodOf(name).statistic), name);
      assert.equal(needsCalibration({ method: name }), methodOf(name).statistic !== 'none', name);
    }
  });

  it("the CLI's --method choices, its usage line and its refusal list the registry's methods", () => {
    assert.deepEqual(PRUNING_OPTIONS.method.arg.split('|'), names);
    for (const name of names) assert.ok(PRUNING_OPTIONS.method.help.includes(`${name} (${methodOf(name).description})`), name);
    const help = cli('prune', '--help');
    assert.equal(help.code, 0, help.stderr);
    assert.ok(help.stdout.includes(`[--method ${names.join('|')}]`), help.stdout);
    assert.throws(() => parseMethod('obs'), { message: `--method must be one of ${names.join(', ')}; got "obs"` });
  });

  it("the wizard's quick-pick items are the registry's methods with their descriptions", () => {
    assert.deepEqual(
      methodItems(),
      methods().map((m) => ({ label: m.name, description: m.description, detail: m.detail, value: m.name })),
    );
  });

  it("the panel protocol's labels and plan methods are the registry's, and it accepts exactly those", () => {
    assert.deepEqual(PLAN_METHODS, names);
    assert.deepEqual(PROTOCOL_LABELS, METHOD_LABELS);
    for (const method of names) assert.ok(isFromWebview({ type: 'computePlans', method, target: 0.5, quick: true }), method);
    assert.equal(isFromWebview({ type: 'computePlans', method: 'obs', target: 0.5, quick: true }), false);
  });

  it('an update applies after exactly the methods that accept one, and needs the stronger statistic', () => {
    for (const method of methods()) {
      for (const update of UPDATE_NAMES) {
        if (method.acceptsUpdate) {
          assert.equal(parseUpdate(update, method.name), update);
          assert.equal(statisticOf({ method: method.name, update }), 'gram');
        } else {
          assert.throws(() => parseUpdate(update, method.name), { message: new RegExp(`^${METHOD_LABELS[method.name]} fits its own weights`) });
        }
      }
    }
  });

  it("the report names each method by its label, with the settings the method reads", () => {
    for (const method of methods()) {
      const record = {
        method: method.name,
        nm: null,
        sparsity: 0.5,
        output: '/o',
        source: { path: '/m', parameters: 1, dtype: 'F32', files: [] },
        created: 'now',
        settings: { include: [], exclude: [], blocksize: 64, percdamp: 0.02, update: null },
        calibration: null,
        evaluation: null,
        perplexity: { dense: null, pruned: null },
        measured: { sparsity: 0.5, modelSparsity: 0.4, zeros: 1, targetedParameters: 2, parameters: 3 },
        plan: { allocation: 'uniform' },
        tensors: {},
        layers: [],
        seconds: { total: 1, prune: 1 },
        peakRssMb: 1,
      } as unknown as PruneRecord;
      const report = renderReport(record);
      assert.ok(report.includes(`| method | ${METHOD_LABELS[method.name]} |`), method.name);
      assert.equal(report.includes('blocksize 64'), method.settings.includes('blocksize'), method.name);
      assert.equal(report.includes('dampening 0.02'), method.settings.includes('percdamp'), method.name);
    }
  });
});
