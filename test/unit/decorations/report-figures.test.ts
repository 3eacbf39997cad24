import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PruneRecord } from '../../../src/engine/export/record';
import { ERROR_FIGURE, LOSS_HISTOGRAM_FIGURE, lossHistogramSvg, renderReport, REPORT_FILE, reportFiles, SPARSITY_FIGURE, sparsitySvg } from '../../../src/engine/export/report';
import { LINEARS } from '../../../src/engine/model/config';

const blocks = [0.5, 0.55, 0.6, 0.65, 0.7];
const record = {
  format: 'prunelens.record',
  version: 1,
  created: '2026-01-01T00:00:00.000Z',
  output: '/m/out',
  source: { path: '/m/src', dtype: 'F32', files: ['model.safetensors'], parameters: 1000 },
  method: 'wanda',
  sparsity: 0.6,
  nm: null,
  settings: { include: [], exclude: [], blocksize: 128, percdamp: 0.01 },
  calibration: null,
  evaluation: { file: 'eval.txt', seqlen: 256, windows: 10, tokens: 2560 },
  perplexity: { dense: 4.65, pruned: 18.84 },
  measured: { sparsity: 0.6, modelSparsity: 0.4, zeros: 600, targetedParameters: 1000, parameters: 1500 },
  plan: { format: 'prunelens.plan', version: 1, model: { modelType: 'llama', layers: 5, hiddenSize: 64, intermediateSize: 172 }, target: 0.6, allocation: 'manual', method: 'wanda', parameters: {}, calibration: null, blocks: blocks.map((sparsity, layer) => ({ layer, sparsity })), statistics: {} },
  tensors: {},
  layers: blocks.map((sparsity, layer) => ({ layer, sparsity, seconds: 0.5 })),
  seconds: { total: 10, prune: 5 },
  peakRssMb: 300,
} as unknown as PruneRecord;

/** Every element's attributes are unique and every tag is closed: what an image viewer's XML parser requires. */
function assertWellFormed(svg: string): void {
  for (const tag of svg.match(/<[a-z][^>]*>/g) ?? []) {
    const names = [...tag.matchAll(/\s([a-z-]+)="/g)].map((m) => m[1]);
    assert.equal(new Set(names).size, names.length, `duplicate attribute in ${tag}`);
  }
  const open: string[] = [];
  for (const [, closing, name, selfClosing] of svg.matchAll(/<(\/?)([a-z]+)[^>]*?(\/?)>/g)) {
    if (closing) assert.equal(open.pop(), name, `</${name}> closes another element`);
    else if (!selfClosing) open.push(name!);
  }
  assert.deepEqual(open, [], 'every element is closed');
  assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
}

describe('report figures', () => {
  it('writes paths relative to the output folder, and names the method and allocation one way', () => {
    const md = renderReport({ ...record, calibration: { file: '/m/data/calib.txt', format: 'text', sha256: 'ab'.repeat(32), nsamples: 8, seqlen: 64, seed: 0 } } as unknown as PruneRecord);
    assert.match(md, /^# PruneLens report: Wanda 60\.0%, manual$/m);
    assert.match(md, /Source `\.\.\/src`/);
    assert.match(md, /\| calibration \| `\.\.\/data\/calib\.txt`/);
    assert.doesNotMatch(md, /\/m\/out/, 'the output folder is "this folder"');
    assert.match(md, /\| pruned \| 18\.84/);
  });

  it('adds a per-block error chart only when the plan has an error table, with theme colours by class', () => {
    assert.ok(!reportFiles(record).some(([name]) => name === ERROR_FIGURE), 'no error table, no chart');
    const ratios = [0.4, 0.5, 0.6, 0.7];
    const errors = blocks.map((_, b) => Object.fromEntries(LINEARS.map((l) => [l, ratios.map((r) => (b + 1) * r)])));
    const withTable = { ...record, plan: { ...record.plan, statistics: { errors: { ratios, windows: 32, errors, outputNorms: blocks.map(() => 1) } } } } as PruneRecord;
    const files = reportFiles(withTable);
    const chart = files.find(([name]) => name === ERROR_FIGURE)?.[1];
    assert.ok(chart, 'the chart is written');
    assertWellFormed(chart);
    assert.equal([...chart.matchAll(/<rect [^>]*class="err"/g)].length, blocks.length);
    assert.match(files[0]![1], new RegExp(`!\\[[^\\]]+\\]\\(${ERROR_FIGURE}\\)`));
    assert.match(chart, /var\(--vscode-charts-orange,/);
    assert.match(chart, /prefers-color-scheme:dark/);
    assert.doesNotMatch(sparsitySvg(record), /fill="#/, 'no fixed colours outside the style sheet');
  });

  it("charts each block's measured layer loss when the record kept per-linear losses, and tables each linear's loss, time and memory", () => {
    const linears = (layer: number) => Object.fromEntries(LINEARS.map((l, i) => [l, { loss: (layer + 1) * (i + 1), ms: 10 + i, rssMb: 200 + layer }]));
    const measured = { ...record, layers: record.layers.map((l) => ({ ...l, linears: linears(l.layer) })) } as PruneRecord;
    const files = reportFiles(measured);
    const chart = files.find(([name]) => name === ERROR_FIGURE)?.[1];
    assert.ok(chart, 'the chart is written without an error table');
    assertWellFormed(chart);
    // Block b's bar is the sum of its linears' losses: (b + 1) · (1 + 2 + ... + 7) = 28 (b + 1).
    const sums = blocks.map((_, b) => 28 * (b + 1));
    assert.deepEqual([...chart.matchAll(/<title>block (\d+): ([\d.]+) \(/g)].map((m) => Number(m[2])), sums);
    assert.match(chart, /Layer loss per decoder block \(Wanda, measured while pruning\)/);
    const md = files[0]![1];
    assert.match(md, new RegExp(`!\\[Layer loss per decoder block[^\\]]*\\]\\(${ERROR_FIGURE}\\)`));
    assert.match(md, /^\| 2 \| self_attn\.k_proj \| 6\.000 \| 11 ms \| 202 MiB \|$/m);
    assert.equal(md.match(/^\| \d \| (self_attn|mlp)\.\w+ \|/gm)?.length, blocks.length * LINEARS.length);
  });

  it('writes the sparsity figure always, the loss histogram when the losses were kept, and links both', () => {
    const without = reportFiles(record);
    assert.deepEqual(without.map(([name]) => name), [REPORT_FILE, SPARSITY_FIGURE]);
    assert.match(without[0]![1], new RegExp(`!\\[[^\\]]+\\]\\(${SPARSITY_FIGURE}\\)`));
    assert.doesNotMatch(without[0]![1], new RegExp(LOSS_HISTOGRAM_FIGURE));
    const losses = { dense: Float32Array.from([1, 1, 1, 1]), pruned: Float32Array.from([2, 2, 0, 1]) };
    const withLosses = reportFiles(record, losses);
    assert.deepEqual(withLosses.map(([name]) => name), [REPORT_FILE, SPARSITY_FIGURE, LOSS_HISTOGRAM_FIGURE]);
    assert.match(withLosses[0]![1], new RegExp(`!\\[[^\\]]+\\]\\(${LOSS_HISTOGRAM_FIGURE}\\)`));
  });

  it('keeps the report\'s tables as they were', () => {
    const plain = renderReport(record);
    const linked = reportFiles(record)[0]![1];
    for (const line of plain.split('\n').filter((l) => l.startsWith('|'))) assert.ok(linked.includes(line), line);
  });

  it('draws one bar per block at its measured sparsity, with the target marked', () => {
    const svg = sparsitySvg(record);
    assertWellFormed(svg);
    const bars = [...svg.matchAll(/<rect [^>]*height="([\d.]+)"[^>]*><title>block (\d+): ([\d.]+)%<\/title>/g)];
    assert.equal(bars.length, blocks.length);
    bars.forEach((m, i) => assert.equal(m[3], (100 * blocks[i]!).toFixed(2)));
    // Bar heights grow with sparsity.
    for (let i = 1; i < bars.length; i++) assert.ok(Number(bars[i]![1]) > Number(bars[i - 1]![1]));
    assert.match(svg, /target 60\.0%/);
  });

  it('bins every finite change in loss and reports their mean', () => {
    const dense = Float32Array.from([1, 1, 1, 1, 1]);
    const pruned = Float32Array.from([2, 2, 0, 1, Number.NaN]);
    const svg = lossHistogramSvg({ dense, pruned });
    assertWellFormed(svg);
    assert.match(svg, /4 tokens/);
    assert.match(svg, /Mean change 0\.250 nats; 50\.0% of tokens lost probability/);
    assert.match(svg, /perplexity x1\.28/);
  });
});
