/**
 * The expert heat map's page: layers x experts, each cell coloured by the chosen statistic. A person
 * clicks cells (or picks the lowest N of every layer) to select experts to remove; the host prices the
 * selection with the engine and runs the removal. The selection, metric and last result are kept with
 * setState, so a hidden-and-shown or reloaded panel comes back as it was.
 */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-label/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-progress-bar/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import { formatPerplexity } from '../src/engine/display';
import {
  assertNever,
  HEATMAP_METRIC_LABELS,
  HEATMAP_METRICS,
  type ExpertCost,
  type ExpertSelection,
  type HeatmapFromWebview,
  type HeatmapJob,
  type HeatmapMetric,
  type HeatmapModel,
  type HeatmapState,
  type HeatmapStats,
  type HeatmapToWebview,
} from '../src/shared/protocol';
import { h, hostApi } from './page';

const vscode = hostApi<HeatmapFromWebview, HeatmapState>();

let state = restoreState(vscode.getState());
let model: HeatmapModel | undefined;
let stats: HeatmapStats | undefined;
let running: HeatmapJob | undefined;
let lastRequest = 0;
let cost: { cost: ExpertCost } | { problem: string } | undefined;

function restoreState(raw: unknown): HeatmapState | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const s = raw as Partial<HeatmapState>;
  if (typeof s.model !== 'string') return undefined;
  return {
    model: s.model,
    metric: HEATMAP_METRICS.includes(s.metric as HeatmapMetric) ? (s.metric as HeatmapMetric) : 'reap',
    selection: typeof s.selection === 'object' && s.selection !== null ? s.selection : {},
    lowestN: typeof s.lowestN === 'number' && s.lowestN >= 1 ? s.lowestN : 1,
    result: s.result,
  };
}


const send = (message: HeatmapFromWebview): void => vscode.postMessage(message);
const save = (): void => {
  if (state) vscode.setState(state);
};
const count = (n: number): string => n.toLocaleString('en-US');
const bytes = (n: number): string => (n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(2)} GiB` : n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(2)} MiB` : `${(n / 1024).toFixed(1)} KiB`);

const ui = {
  title: h('h1', {}, 'Expert heat map'),
  meta: h('p', { class: 'meta', role: 'status' }, 'Loading the model…'),
  metric: h('vscode-single-select', { id: 'metric' }),
  lowestN: h('input', { id: 'lowest-n', type: 'number', min: '1', step: '1', 'aria-label': 'Experts per layer' }),
  lowestMetric: h('span', { class: 'help' }),
  selectLowest: h('vscode-button', { id: 'select-lowest', secondary: '', disabled: '' }, 'Select lowest'),
  clear: h('vscode-button', { id: 'clear', secondary: '', disabled: '' }, 'Clear selection'),
  compute: h('vscode-button', { id: 'compute', secondary: '', hidden: '' }, 'Compute statistics'),
  statsLine: h('p', { class: 'help', id: 'stats-line' }),
  grid: h('div', { class: 'grid', role: 'grid', 'aria-labelledby': 'grid-heading' }),
  legendLow: h('span', { class: 'legend-value' }),
  legendHigh: h('span', { class: 'legend-value' }),
  cost: h('div', { class: 'cost', role: 'status', 'aria-live': 'polite' }),
  apply: h('vscode-button', { id: 'apply', disabled: '' }, 'Apply'),
  cancel: h('vscode-button', { id: 'cancel', secondary: '', hidden: '' }, 'Cancel'),
  openReport: h('vscode-button', { id: 'open-report', secondary: '', hidden: '' }, 'Open report'),
  progressBar: h('vscode-progress-bar', { hidden: '' }),
  progressText: h('span', { class: 'progress-text' }),
  result: h('p', { class: 'result', role: 'status', 'aria-live': 'polite' }),
  error: h('p', { class: 'error', role: 'alert' }),
};

function buildPage(): void {
  for (const m of HEATMAP_METRICS) ui.metric.append(h('vscode-option', { value: m }, HEATMAP_METRIC_LABELS[m]));
  const controls = h(
    'section',
    { class: 'controls', 'aria-label': 'Colour and selection' },
    h('vscode-label', { for: 'metric' }, 'Colour by'),
    ui.metric,
    h('label', { for: 'lowest-n' }, 'Lowest'),
    ui.lowestN,
    ui.lowestMetric,
    ui.selectLowest,
    ui.clear,
    ui.compute,
  );
  const legend = h(
    'ul',
    { class: 'legend', 'aria-label': 'Legend' },
    h('li', {}, ui.legendLow, h('span', { class: 'swatch ramp', 'aria-hidden': 'true' }), ui.legendHigh),
    h('li', {}, h('span', { class: 'swatch selected', 'aria-hidden': 'true' }), 'selected for removal (click a cell to toggle)'),
  );
  document.getElementById('app')!.replaceChildren(
    ui.title,
    ui.meta,
    controls,
    ui.statsLine,
    h('h2', { id: 'grid-heading' }, 'Layers × experts'),
    legend,
    ui.grid,
    h('h2', {}, 'Predicted effect'),
    ui.cost,
    h('div', { class: 'actions' }, ui.apply, ui.cancel, ui.openReport),
    h('div', { class: 'progress' }, ui.progressBar, ui.progressText),
    ui.result,
    ui.error,
  );
  document.getElementById('app')!.removeAttribute('aria-busy');
  ui.metric.addEventListener('change', () => {
    if (!state) return;
    state.metric = ui.metric.value as HeatmapMetric;
    save();
    render();
  });
  ui.lowestN.addEventListener('change', () => {
    if (!state) return;
    state.lowestN = Math.max(1, Math.round(Number(ui.lowestN.value) || 1));
    save();
  });
  ui.selectLowest.addEventListener('click', selectLowest);
  ui.clear.addEventListener('click', () => setSelection({}));
  ui.compute.addEventListener('click', () => {
    clearError();
    send({ type: 'computeStats' });
  });
  ui.apply.addEventListener('click', () => {
    if (!state) return;
    clearError();
    ui.result.textContent = '';
    send({ type: 'apply', selection: state.selection });
  });
  ui.cancel.addEventListener('click', () => send({ type: 'cancel' }));
  ui.openReport.addEventListener('click', () => {
    if (state?.result) send({ type: 'openReport', output: state.result.output });
  });
  // Cells are buttons: a click (or Enter/Space on the focused cell) toggles the expert.
  ui.grid.addEventListener('click', (event) => {
    const cell = (event.target as HTMLElement).closest<HTMLButtonElement>('button.cell');
    if (!cell || cell.disabled) return;
    toggle(Number(cell.dataset.layer), Number(cell.dataset.expert));
  });
}

const valueOf = (layer: number, expert: number, metric: HeatmapMetric): number | undefined => stats?.layers.find((l) => l.layer === layer)?.experts[expert]?.[metric];

function formatValue(metric: HeatmapMetric, v: number): string {
  return metric === 'frequency' ? `${(100 * v).toFixed(1)}%` : v.toFixed(3);
}

function isSelected(layer: number, expert: number): boolean {
  return state?.selection[String(layer)]?.includes(expert) ?? false;
}

function setSelection(selection: ExpertSelection): void {
  if (!state) return;
  state.selection = Object.fromEntries(Object.entries(selection).filter(([, e]) => e.length > 0).map(([l, e]) => [l, [...e].sort((a, b) => a - b)]));
  save();
  render();
  requestCost();
}

function toggle(layer: number, expert: number): void {
  if (!state) return;
  const list = state.selection[String(layer)] ?? [];
  setSelection({ ...state.selection, [String(layer)]: list.includes(expert) ? list.filter((e) => e !== expert) : [...list, expert] });
  // The grid was redrawn: keyboard focus goes back to the cell just toggled.
  ui.grid.querySelector<HTMLButtonElement>(`button.cell[data-layer="${layer}"][data-expert="${expert}"]`)?.focus();
}

/** The N lowest experts of every layer by the shown statistic (ties to the lower index), replacing the selection. */
function selectLowest(): void {
  if (!state || !stats) return;
  const n = state.lowestN;
  const metric = state.metric;
  setSelection(
    Object.fromEntries(
      stats.layers.map((l) => {
        const order = l.experts.map((e, j) => [e[metric], j] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
        return [String(l.layer), order.slice(0, n).map(([, j]) => j)];
      }),
    ),
  );
}

function requestCost(): void {
  if (!state) return;
  cost = undefined;
  if (Object.keys(state.selection).length === 0) return render();
  send({ type: 'requestCost', requestId: ++lastRequest, selection: state.selection });
}

// ---- rendering

function render(): void {
  if (!state || !model) return renderBusy();
  if (ui.metric.value !== state.metric) ui.metric.value = state.metric;
  if (document.activeElement !== ui.lowestN) ui.lowestN.value = String(state.lowestN);
  ui.lowestN.max = String(model.experts - model.topK);
  ui.lowestMetric.textContent = `per layer by ${HEATMAP_METRIC_LABELS[state.metric]}`;
  renderGrid();
  renderCost();
  renderResult();
  renderBusy();
}

function renderGrid(): void {
  const metric = state!.metric;
  const m = model!;
  const values = stats ? stats.layers.flatMap((l) => l.experts.map((e) => e[metric])) : [];
  const lo = values.length ? Math.min(...values) : 0;
  const hi = values.length ? Math.max(...values) : 0;
  ui.legendLow.textContent = stats ? `low ${formatValue(metric, lo)}` : 'low';
  ui.legendHigh.textContent = stats ? `${formatValue(metric, hi)} high` : 'high';
  ui.grid.style.setProperty('--experts', String(m.experts));
  const header = h('div', { class: 'grid-row header', role: 'row' }, h('span', { class: 'layer-label', role: 'columnheader' }, 'layer'));
  for (let j = 0; j < m.experts; j++) header.append(h('span', { class: 'expert-label', role: 'columnheader' }, `e${j}`));
  const rows = m.sparseLayers.map((layer) => {
    const row = h('div', { class: 'grid-row', role: 'row' }, h('span', { class: 'layer-label', role: 'rowheader' }, `L${layer}`));
    for (let j = 0; j < m.experts; j++) {
      const v = valueOf(layer, j, metric);
      const selected = isSelected(layer, j);
      const label = v === undefined ? '–' : formatValue(metric, v);
      const e = stats?.layers.find((l) => l.layer === layer)?.experts[j];
      const tip = e
        ? `layer ${layer}, expert ${j}: REAP ${e.reap.toFixed(4)}, routing share ${(100 * e.frequency).toFixed(2)}%, mean weight ${e.meanWeight.toFixed(3)}${selected ? ' (selected for removal)' : ''}`
        : `layer ${layer}, expert ${j}`;
      const cell = h('button', { class: `cell${selected ? ' selected' : ''}`, role: 'gridcell', 'data-layer': String(layer), 'data-expert': String(j), 'aria-pressed': String(selected), title: tip, 'aria-label': tip }, label);
      cell.disabled = running !== undefined;
      if (v !== undefined) {
        const level = hi > lo ? (v - lo) / (hi - lo) : 0.5;
        cell.style.setProperty('--v', level.toFixed(4));
        cell.classList.toggle('hot', level > 0.6);
      } else {
        cell.classList.add('empty');
      }
      row.append(cell);
    }
    return row;
  });
  ui.grid.replaceChildren(header, ...rows);
}

function renderCost(): void {
  const m = model!;
  const selectedCount = Object.values(state!.selection).reduce((n, e) => n + e.length, 0);
  if (selectedCount === 0) {
    ui.cost.replaceChildren(h('p', { class: 'help' }, `No experts selected. Click cells, or select the lowest N of every layer. Each layer has ${m.experts} experts, and each token is routed to ${m.topK}.`));
    return;
  }
  if (!cost) {
    ui.cost.replaceChildren(h('p', { class: 'help' }, `${selectedCount} experts selected; pricing…`));
    return;
  }
  if ('problem' in cost) {
    ui.cost.replaceChildren(h('p', { class: 'problem' }, `${selectedCount} experts selected, which cannot be applied: ${cost.problem}`));
    return;
  }
  const c = cost.cost;
  const masked = Object.entries(c.masked);
  const lines = [
    h('p', {}, `${selectedCount} experts selected. Removed from every layer: ${c.removedPerLayer} (the config's expert count ${m.experts} → ${m.experts - c.removedPerLayer}).`),
    h('p', {}, `Saves ${count(c.parametersRemoved)} parameters, ${bytes(c.bytesRemoved)}: ${(100 * c.fraction).toFixed(2)}% of the model.`),
    h('p', {}, `Experts left to route to: ${Object.entries(c.left).map(([l, n]) => `L${l} ${n}`).join(', ')}.`),
    masked.length > 0
      ? h('p', { class: 'masked' }, `Masked rather than removed (a standard config has one expert count; these keep their place with zero weights and a router row that nearly never wins, saving nothing): ${masked.map(([l, n]) => `L${l} ${n}`).join(', ')}. The routing left to them is measured on the written model.`)
      : h('p', { class: 'help' }, 'Every layer loses the same number: all selected experts are removed outright.'),
  ];
  ui.cost.replaceChildren(...lines);
}

function renderResult(): void {
  const r = state!.result;
  ui.openReport.hidden = !r;
  if (!r) return;
  const routing = r.maskedRouting ? ` Routings to masked experts per calibration token: ${Object.entries(r.maskedRouting).map(([l, v]) => `L${l} ${(100 * v).toFixed(2)}%`).join(', ')}.` : '';
  ui.result.textContent = `Written to ${r.output}: ${count(r.parametersRemoved)} parameters removed, perplexity ${formatPerplexity(r.pplDense)} → ${formatPerplexity(r.ppl)}.${routing}`;
}

function renderBusy(): void {
  const busy = running !== undefined;
  const selected = state ? Object.keys(state.selection).length > 0 : false;
  ui.selectLowest.disabled = busy || !stats;
  ui.clear.disabled = busy || !selected;
  ui.apply.disabled = busy || !selected || cost === undefined || 'problem' in cost;
  ui.cancel.hidden = !busy;
  ui.progressBar.hidden = !busy;
  ui.compute.hidden = busy || stats !== undefined || !model;
  for (const cell of ui.grid.querySelectorAll<HTMLButtonElement>('button.cell')) cell.disabled = busy;
}

function showError(message: string): void {
  ui.error.textContent = message;
}

function clearError(): void {
  ui.error.textContent = '';
}

function endJob(text: string): void {
  running = undefined;
  ui.progressText.textContent = text;
  render();
}

// ---- messages from the host

function receive(message: HeatmapToWebview): void {
  switch (message.type) {
    case 'init':
      if (state?.model !== message.model.path) state = { model: message.model.path, metric: 'reap', selection: {}, lowestN: 1 };
      model = message.model;
      ui.meta.textContent = `${message.model.name}: ${message.model.modelType}, ${message.model.sparseLayers.length} of ${message.model.layers} layers with ${message.model.experts} experts, top-${message.model.topK}, ${count(message.model.parameters)} parameters. Calibration ${message.calibration}; evaluation ${message.evaluation}.`;
      save();
      render();
      return requestCost();
    case 'stats':
      stats = message.stats;
      ui.statsLine.textContent = `Statistics from ${count(message.stats.tokens)} calibration tokens (${message.stats.calibration.nsamples} windows of ${message.stats.calibration.seqlen} from ${message.stats.calibration.file}).`;
      if (running === 'stats') return endJob('Statistics ready.');
      return render();
    case 'cost':
      if (message.requestId !== lastRequest) return;
      cost = { cost: message.cost };
      return render();
    case 'costError':
      if (message.requestId !== lastRequest) return;
      cost = { problem: message.message };
      return render();
    case 'progress':
      running = message.job;
      ui.progressBar.value = message.done;
      ui.progressBar.max = message.total;
      ui.progressText.textContent = `${message.stage}: ${message.done}/${message.total}`;
      return renderBusy();
    case 'done': {
      const { type: _type, ...result } = message;
      if (state) state.result = result;
      save();
      return endJob('Applied.');
    }
    case 'cancelled':
      return endJob('Cancelled.');
    case 'error':
      showError(message.message);
      if (message.job) endJob('Stopped by an error.');
      return;
    default:
      return assertNever(message);
  }
}

buildPage();
render();
window.addEventListener('message', (event: MessageEvent<HeatmapToWebview>) => receive(event.data));
send({ type: 'ready' });
