/**
 * The sparsity allocation panel's page. It owns the edit (allocation, per-block sparsities) and keeps
 * it with setState, so a hidden-and-shown or reloaded panel comes back as it was; the host computes the
 * plans, prices each edit and prunes.
 */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-label/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-progress-bar/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import type { Allocation } from '../src/engine/allocate/plan';
import type { Method } from '../src/engine/prune/spec';
import {
  ALLOCATION_KINDS,
  ALLOCATION_LABELS,
  assertNever,
  MAX_SPARSITY,
  METHOD_LABELS,
  PLAN_METHODS,
  type FromWebview,
  type Job,
  type PanelState,
  type ToWebview,
} from '../src/shared/protocol';
import { clampSparsity, comparedWith, mean, percent, restoreState, samePlans, shiftToMean, STEP } from './edits';

interface VsCodeApi {
  postMessage(message: FromWebview): void;
  getState(): unknown;
  setState(state: PanelState): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const vscode = acquireVsCodeApi();
/** Estimates are requested this long after the last slider movement. */
const ESTIMATE_DELAY_MS = 60;

let state = restoreState(vscode.getState());
let running: Job | undefined;
let lastRequest = 0;
let estimateTimer: ReturnType<typeof setTimeout> | undefined;
let estimate: { score: number; perBlock: number[]; target: number } | undefined;

/** Custom element tags are in the map too (@vscode-elements declares them), so their types come through. */
function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<Record<string, string>> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) if (value !== undefined) el.setAttribute(name, value);
  el.append(...children);
  return el;
}

const send = (message: FromWebview): void => vscode.postMessage(message);
const save = (): void => {
  if (state) vscode.setState(state);
};

// ---- the page: built once; the block rows are rebuilt when the layer count changes, everything else updated in place

const ui = {
  title: h('h1', {}, 'Sparsity allocation'),
  meta: h('p', { class: 'meta' }),
  method: h('vscode-single-select', { id: 'method' }),
  planTarget: h('input', { id: 'plan-target', type: 'number', min: '5', max: String(MAX_SPARSITY * 100), step: '1', 'aria-describedby': 'plan-target-help' }),
  compute: h('vscode-button', { id: 'compute', secondary: '' }, 'Compute plans'),
  allocation: h('vscode-single-select', { id: 'allocation' }),
  target: h('input', { id: 'target', type: 'range', min: '0', max: String(MAX_SPARSITY), step: String(STEP) }),
  targetValue: h('output', { for: 'target', class: 'value' }),
  reset: h('vscode-button', { id: 'reset', secondary: '' }, 'Reset edits'),
  scores: h('p', { class: 'scores' }),
  rows: h('div', { class: 'rows', role: 'group', 'aria-labelledby': 'chart-heading' }),
  estimate: h('p', { class: 'estimate', role: 'status', 'aria-live': 'polite' }),
  apply: h('vscode-button', { id: 'apply' }, 'Apply'),
  export: h('vscode-button', { id: 'export', secondary: '' }, 'Export…'),
  cancel: h('vscode-button', { id: 'cancel', secondary: '', hidden: '' }, 'Cancel'),
  openReport: h('vscode-button', { id: 'open-report', secondary: '', hidden: '' }, 'Open report'),
  progressBar: h('vscode-progress-bar', { hidden: '' }),
  progressText: h('span', { class: 'progress-text' }),
  error: h('p', { class: 'error', role: 'alert' }),
};

interface Row {
  slider: HTMLInputElement;
  fill: HTMLElement;
  markers: Record<Allocation, HTMLElement>;
  value: HTMLElement;
  share: HTMLElement;
  shareBar: HTMLElement;
}
let rows: Row[] = [];

function buildPage(): void {
  for (const m of PLAN_METHODS) ui.method.append(h('vscode-option', { value: m }, METHOD_LABELS[m]));
  for (const a of ALLOCATION_KINDS) ui.allocation.append(h('vscode-option', { value: a }, ALLOCATION_LABELS[a]));
  const legend = h(
    'ul',
    { class: 'legend', 'aria-label': 'Chart legend' },
    h('li', {}, h('span', { class: 'swatch fill', 'aria-hidden': 'true' }), 'edited plan'),
    ...ALLOCATION_KINDS.map((a) => h('li', {}, h('span', { class: `swatch marker ${a}`, 'aria-hidden': 'true' }), `${ALLOCATION_LABELS[a]} plan`)),
    h('li', {}, h('span', { class: 'swatch share', 'aria-hidden': 'true' }), 'estimated block error'),
  );
  const app = document.getElementById('app')!;
  app.replaceChildren(
    h('header', {}, ui.title, ui.meta),
    h(
      'section',
      { class: 'controls', 'aria-label': 'Plans' },
      h('vscode-label', { for: 'method' }, 'Method'),
      ui.method,
      h('label', { for: 'plan-target' }, 'Plan target (%)'),
      ui.planTarget,
      ui.compute,
      h('p', { id: 'plan-target-help', class: 'help' }, 'Plans uniform, OWL and BESA-style allocations at this model-wide sparsity and measures the error table that prices edits.'),
    ),
    h(
      'section',
      { class: 'controls', 'aria-label': 'Edit' },
      h('vscode-label', { for: 'allocation' }, 'Start from'),
      ui.allocation,
      h('label', { for: 'target' }, 'Model-wide sparsity'),
      ui.target,
      ui.targetValue,
      ui.reset,
    ),
    ui.scores,
    h('h2', { id: 'chart-heading' }, 'Sparsity per decoder block'),
    legend,
    h('div', { class: 'axis', 'aria-hidden': 'true' }, h('span', {}, ''), ticks()),
    ui.rows,
    ui.estimate,
    h('section', { class: 'actions', 'aria-label': 'Prune' }, ui.apply, ui.export, ui.cancel, ui.openReport),
    h('div', { class: 'progress' }, ui.progressBar, h('span', { role: 'status', 'aria-live': 'polite' }, ui.progressText)),
    ui.error,
  );
  app.removeAttribute('aria-busy');

  ui.compute.addEventListener('click', () => {
    const target = Number(ui.planTarget.value) / 100;
    const method = ui.method.value as Method;
    if (!(target > 0 && target <= MAX_SPARSITY) || !(PLAN_METHODS as string[]).includes(method)) {
      return showError(`The plan target must be a percentage between 1 and ${MAX_SPARSITY * 100}.`);
    }
    send({ type: 'computePlans', method, target });
  });
  ui.allocation.addEventListener('change', () => {
    if (!state?.plans) return;
    const allocation = ui.allocation.value as Allocation;
    state.allocation = allocation;
    state.blocks = [...state.plans.plans[allocation].blocks];
    edited();
  });
  ui.target.addEventListener('input', () => {
    if (!state?.blocks) return;
    state.blocks = shiftToMean(state.blocks, Number(ui.target.value));
    edited();
  });
  ui.reset.addEventListener('click', () => {
    if (!state?.plans || !state.allocation) return;
    state.blocks = [...state.plans.plans[state.allocation].blocks];
    edited();
  });
  const editOf = (): { allocation: Allocation; blocks: number[] } | undefined =>
    state?.allocation && state.blocks ? { allocation: state.allocation, blocks: state.blocks } : undefined;
  ui.apply.addEventListener('click', () => {
    const edit = editOf();
    if (edit) send({ type: 'apply', ...edit });
  });
  ui.export.addEventListener('click', () => {
    const edit = editOf();
    if (edit) send({ type: 'export', ...edit });
  });
  ui.cancel.addEventListener('click', () => send({ type: 'cancel' }));
  ui.openReport.addEventListener('click', () => send({ type: 'openReport' }));
}

function ticks(): HTMLElement {
  const axis = h('span', { class: 'ticks' });
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    const tick = h('span', {}, percent(t, 0));
    tick.style.left = percent(t, 0);
    axis.append(tick);
  }
  return axis;
}

function buildRows(layers: number): void {
  rows = Array.from({ length: layers }, (_, layer) => {
    const id = `block-${layer}`;
    const slider = h('input', { id, type: 'range', min: '0', max: String(MAX_SPARSITY), step: String(STEP), 'aria-describedby': `${id}-share` });
    const fill = h('span', { class: 'fill' });
    const markers = Object.fromEntries(ALLOCATION_KINDS.map((a) => [a, h('span', { class: `marker ${a}` })])) as Record<Allocation, HTMLElement>;
    const value = h('output', { for: id, class: 'value' });
    const shareBar = h('span', { class: 'share-bar' });
    const share = h('span', { id: `${id}-share`, class: 'share-text' });
    slider.addEventListener('input', () => {
      if (!state?.blocks) return;
      state.blocks[layer] = clampSparsity(Number(slider.value));
      edited();
    });
    ui.rows.append(
      h(
        'div',
        { class: 'row' },
        h('label', { for: id }, `Block ${layer}`),
        h('span', { class: 'track', 'aria-hidden': 'true' }, fill, ...ALLOCATION_KINDS.map((a) => markers[a])),
        slider,
        value,
        h('span', { class: 'share' }, shareBar, share),
      ),
    );
    return { slider, fill, markers, value, share, shareBar };
  });
}

// ---- updates

function render(): void {
  if (!state) return;
  const info = state.info;
  ui.title.textContent = info ? `Sparsity allocation: ${info.name}` : 'Sparsity allocation';
  if (ui.method.value !== state.method) ui.method.value = state.method;
  if (document.activeElement !== ui.planTarget) ui.planTarget.value = String(Math.round(state.target * 100));
  const layers = state.plans ? state.plans.plans.uniform.blocks.length : 0;
  if (rows.length !== layers) {
    ui.rows.replaceChildren();
    buildRows(layers);
  }
  const plans = state.plans;
  const allocation = state.allocation;
  if (allocation && ui.allocation.value !== allocation) ui.allocation.value = allocation;
  ui.scores.textContent = plans
    ? `Planned with ${METHOD_LABELS[plans.method]} at ${percent(plans.target, 0)}. Estimated block error (lower is better): ${ALLOCATION_KINDS.map((a) => `${ALLOCATION_LABELS[a]} ${plans.plans[a].score.toFixed(3)}`).join(', ')}.`
    : 'No plans yet.';
  const blocks = state.blocks;
  if (plans && blocks && allocation) {
    const base = plans.plans[allocation];
    const shares = estimate?.perBlock ?? base.perBlock;
    const maxShare = Math.max(...shares, ...base.perBlock, 1e-12);
    rows.forEach((row, i) => {
      const v = blocks[i]!;
      if (document.activeElement !== row.slider || Number(row.slider.value) !== v) row.slider.value = String(v);
      row.slider.setAttribute('aria-valuetext', `${percent(v)} (${ALLOCATION_LABELS[allocation]} plan ${percent(base.blocks[i]!)})`);
      row.value.textContent = percent(v);
      row.fill.style.width = percent(v, 3);
      for (const a of ALLOCATION_KINDS) {
        row.markers[a].style.left = percent(plans.plans[a].blocks[i]!, 3);
        row.markers[a].title = `${ALLOCATION_LABELS[a]}: ${percent(plans.plans[a].blocks[i]!)}`;
      }
      const share = shares[i]!;
      const change = share - base.perBlock[i]!;
      row.shareBar.style.width = `${((3 * share) / maxShare).toFixed(3)}em`;
      row.share.textContent = `${share.toFixed(3)}${Math.abs(change) >= 0.0005 ? ` (${change > 0 ? '+' : '−'}${Math.abs(change).toFixed(3)})` : ''}`;
      row.share.title = `Estimated relative error of block ${i}'s output`;
    });
    const modelWide = mean(blocks);
    if (document.activeElement !== ui.target) ui.target.value = String(modelWide);
    ui.target.setAttribute('aria-valuetext', percent(modelWide));
    ui.targetValue.textContent = percent(modelWide);
    ui.estimate.textContent = estimate
      ? `Estimate ${estimate.score.toFixed(3)} (${comparedWith(estimate.score, base.score, allocation)}), pruning ${percent(estimate.target, 2)} of the linear weights. A ranking aid, not a perplexity prediction.`
      : `Estimate ${base.score.toFixed(3)} for the ${ALLOCATION_LABELS[allocation]} plan.`;
  } else {
    ui.estimate.textContent = '';
  }
  renderBusy();
}

function renderBusy(): void {
  const ready = Boolean(state?.plans && state.blocks && state.allocation);
  for (const control of [ui.apply, ui.export, ui.reset]) control.disabled = !ready || running !== undefined;
  ui.compute.disabled = running !== undefined || !state?.info;
  ui.allocation.disabled = !ready;
  ui.target.disabled = !ready;
  for (const row of rows) row.slider.disabled = !ready;
  ui.cancel.hidden = running === undefined;
  ui.progressBar.hidden = running === undefined;
}

/** After any edit: redraw, save, and ask for a fresh estimate once the slider rests. */
function edited(): void {
  clearError();
  save();
  render();
  clearTimeout(estimateTimer);
  estimateTimer = setTimeout(requestEstimate, ESTIMATE_DELAY_MS);
}

function requestEstimate(): void {
  if (!state?.allocation || !state.blocks) return;
  lastRequest += 1;
  send({ type: 'requestEstimate', requestId: lastRequest, allocation: state.allocation, blocks: state.blocks });
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
  renderBusy();
}

// ---- messages from the host

function receive(message: ToWebview): void {
  switch (message.type) {
    case 'init':
      if (state?.model !== message.model.path) {
        state = { model: message.model.path, method: message.method, target: message.target };
        estimate = undefined;
      }
      state.info = message.model;
      ui.meta.textContent = `${message.model.modelType}, ${message.model.layers} decoder blocks, ${message.model.parameters.toLocaleString('en-US')} parameters. Calibration ${message.calibration}; evaluation ${message.evaluation}.`;
      save();
      return render();
    case 'plans': {
      if (!state) return;
      const plans = { method: message.method, target: message.target, plans: message.plans };
      // The same plans again (a reloaded page, a cache hit) keep the user's edits; new plans replace them.
      if (!samePlans(state.plans, plans) || !state.blocks || !state.allocation) {
        state.allocation = state.allocation ?? 'uniform';
        state.blocks = [...plans.plans[state.allocation].blocks];
        estimate = undefined;
      }
      state.plans = plans;
      state.method = message.method;
      state.target = message.target;
      if (running === 'plans') endJob('Plans ready.');
      save();
      render();
      return requestEstimate();
    }
    case 'estimate':
      if (message.requestId !== lastRequest) return;
      estimate = { score: message.score, perBlock: message.perBlock, target: message.target };
      return render();
    case 'progress':
      running = message.job;
      ui.progressBar.value = message.done;
      ui.progressBar.max = message.total;
      ui.progressText.textContent = `${message.stage}: ${message.done}/${message.total}${message.detail ? ` (${message.detail})` : ''}`;
      return renderBusy();
    case 'done':
      ui.openReport.hidden = false;
      return endJob(
        `${message.job === 'apply' ? 'Applied' : 'Exported'} to ${message.output}: ${percent(message.sparsity, 2)} sparse` +
          (message.ppl !== null ? `, perplexity ${message.pplDense?.toFixed(2) ?? '?'} → ${message.ppl.toFixed(2)}.` : '.'),
      );
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
window.addEventListener('message', (event: MessageEvent<ToWebview>) => receive(event.data));
send({ type: 'ready' });
