/**
 * The sparsity allocation panel's page. It owns the edit (allocation, per-block and per-linear
 * sparsities) and keeps it with setState, with the last result, so a hidden-and-shown or reloaded panel
 * comes back as it was; the host computes the plans, prices each edit and prunes.
 */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-label/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-progress-bar/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import type { Allocation } from '../src/engine/allocate/plan';
import { formatPerplexity, formatSeconds } from '../src/engine/display';
import type { Method } from '../src/engine/prune/spec';
import {
  ALLOCATION_KINDS,
  ALLOCATION_LABELS,
  assertNever,
  MAX_SPARSITY,
  METHOD_LABELS,
  PLAN_METHODS,
  type Edit,
  type FromWebview,
  type Job,
  type PanelState,
  type ToWebview,
} from '../src/shared/protocol';
import { comparedWith, mean, moveBlock, moveLinear, percent, restoreState, samePlans, shiftEdit, STEP, type BlockEdit } from './edits';
import { h, hostApi } from './page';

const vscode = hostApi<FromWebview, PanelState>();
/** Estimates are requested this long after the last slider movement. */
const ESTIMATE_DELAY_MS = 60;

let state = restoreState(vscode.getState());
let running: Job | undefined;
let lastRequest = 0;
let estimateTimer: ReturnType<typeof setTimeout> | undefined;
let estimate: { score: number; perBlock: number[]; target: number } | undefined;

const send = (message: FromWebview): void => vscode.postMessage(message);
const save = (): void => {
  if (state) vscode.setState(state);
};
/** Places an element on the sliders' scale: the CSS turns --v into the thumb's position. */
const place = (el: HTMLElement, v: number): void => el.style.setProperty('--v', v.toFixed(4));

// ---- the page: built once; the block rows are rebuilt when the layer count changes, everything else updated in place

const slider = (id: string, label: string): HTMLInputElement => h('input', { id, type: 'range', min: '0', max: String(MAX_SPARSITY), step: String(STEP), 'aria-label': label });

const ui = {
  title: h('h1', {}, 'Sparsity allocation'),
  meta: h('p', { class: 'meta', role: 'status' }, 'Loading the model…'),
  method: h('vscode-single-select', { id: 'method', disabled: '' }),
  planTarget: h('input', { id: 'plan-target', type: 'number', min: '5', max: String(MAX_SPARSITY * 100), step: '1', disabled: '', 'aria-describedby': 'plan-target-help' }),
  quick: h('vscode-button', { id: 'quick-plan', secondary: '', disabled: '' }, 'Quick plan'),
  full: h('vscode-button', { id: 'full-plan', secondary: '', disabled: '' }, 'Full plan'),
  planStatus: h('p', { class: 'help', id: 'plan-status' }),
  allocation: h('vscode-single-select', { id: 'allocation', disabled: '' }),
  target: h('input', { id: 'target', type: 'range', min: '0', max: String(MAX_SPARSITY), step: String(STEP), disabled: '' }),
  targetValue: h('output', { for: 'target', class: 'value' }),
  reset: h('vscode-button', { id: 'reset', secondary: '', disabled: '' }, 'Reset edits'),
  scores: h('p', { class: 'scores' }),
  rows: h('div', { class: 'rows', role: 'group', 'aria-labelledby': 'chart-heading' }),
  estimate: h('p', { class: 'estimate', role: 'status', 'aria-live': 'polite' }),
  apply: h('vscode-button', { id: 'apply', disabled: '' }, 'Apply'),
  exportModel: h('vscode-button', { id: 'export', secondary: '', disabled: '' }, 'Export model…'),
  exportPlan: h('vscode-button', { id: 'export-plan', secondary: '', disabled: '' }, 'Export plan file…'),
  cancel: h('vscode-button', { id: 'cancel', secondary: '', hidden: '' }, 'Cancel'),
  openReport: h('vscode-button', { id: 'open-report', secondary: '', hidden: '' }, 'Open report'),
  progressBar: h('vscode-progress-bar', { hidden: '' }),
  progressText: h('span', { class: 'progress-text' }),
  result: h('p', { class: 'result', role: 'status', 'aria-live': 'polite' }),
  error: h('p', { class: 'error', role: 'alert' }),
};

interface LinearRow {
  slider: HTMLInputElement;
  fill: HTMLElement;
  value: HTMLElement;
}

interface Row {
  slider: HTMLInputElement;
  markers: Record<Allocation, HTMLElement>;
  value: HTMLElement;
  share: HTMLElement;
  shareBar: HTMLElement;
  toggle: HTMLButtonElement;
  details: HTMLElement;
  linears: LinearRow[];
}
let rows: Row[] = [];
const sections: HTMLElement[] = [];

function buildPage(): void {
  for (const a of ALLOCATION_KINDS) ui.allocation.append(h('vscode-option', { value: a }, `${ALLOCATION_LABELS[a]} plan`));
  const legend = h(
    'ul',
    { class: 'legend', 'aria-label': 'Chart legend' },
    h('li', {}, h('span', { class: 'swatch fill', 'aria-hidden': 'true' }), 'edited sparsity (drag the bar)'),
    ...ALLOCATION_KINDS.map((a) => h('li', {}, h('span', { class: `swatch marker ${a}`, 'aria-hidden': 'true' }), `${ALLOCATION_LABELS[a]} plan`)),
    h('li', {}, h('span', { class: 'swatch share', 'aria-hidden': 'true' }), 'estimated block error'),
  );
  const plans = h(
    'section',
    { class: 'controls', 'aria-label': 'Plans' },
    h('vscode-label', { for: 'method' }, 'Method'),
    ui.method,
    h('label', { for: 'plan-target' }, 'Plan target (%)'),
    ui.planTarget,
    ui.quick,
    ui.full,
    h('p', { id: 'plan-target-help', class: 'help' }, 'Plans uniform, OWL and BESA-style allocations at this model-wide sparsity and measures the error table that prices edits. A quick plan uses a few calibration windows; the full plan uses them all.'),
    ui.planStatus,
  );
  const edit = h(
    'section',
    { class: 'controls', 'aria-label': 'Edit' },
    h('vscode-label', { for: 'allocation' }, 'Start from'),
    ui.allocation,
    h('label', { for: 'target' }, 'Model-wide sparsity'),
    ui.target,
    ui.targetValue,
    ui.reset,
  );
  const chart = h(
    'section',
    { 'aria-labelledby': 'chart-heading' },
    ui.scores,
    h('h2', { id: 'chart-heading' }, 'Sparsity per decoder block'),
    legend,
    h('div', { class: 'axis row', role: 'presentation' }, h('span', { class: 'header' }, 'Block'), ticks(), h('span', { class: 'header value' }, 'Sparsity'), h('span', { class: 'header' }, 'Est. error (change)')),
    ui.rows,
    ui.estimate,
  );
  const actions = h('section', { class: 'actions', 'aria-label': 'Prune' }, ui.apply, ui.exportModel, ui.exportPlan, ui.cancel, ui.openReport);
  sections.push(plans, edit, chart, actions);
  const app = document.getElementById('app')!;
  app.replaceChildren(
    h('header', {}, ui.title, ui.meta),
    ...sections,
    h('div', { class: 'progress' }, ui.progressBar, h('span', { role: 'status', 'aria-live': 'polite' }, ui.progressText)),
    ui.result,
    ui.error,
  );
  app.removeAttribute('aria-busy');

  const compute = (quick: boolean): void => {
    const target = Number(ui.planTarget.value) / 100;
    const method = ui.method.value as Method;
    if (!(target > 0 && target <= MAX_SPARSITY) || !(PLAN_METHODS as string[]).includes(method)) {
      return showError(`The plan target must be a percentage between 1 and ${MAX_SPARSITY * 100}.`);
    }
    send({ type: 'computePlans', method, target, quick });
  };
  ui.quick.addEventListener('click', () => compute(true));
  ui.full.addEventListener('click', () => compute(false));
  ui.allocation.addEventListener('change', () => {
    if (!state?.plans) return;
    const allocation = ui.allocation.value as Allocation;
    state.allocation = allocation;
    resetEdit();
  });
  ui.target.addEventListener('input', () => {
    const e = currentEdit();
    if (!e || !state?.linearInfo) return;
    setEdit(shiftEdit(e, Number(ui.target.value), state.linearInfo));
  });
  ui.reset.addEventListener('click', resetEdit);
  const editOf = (): Edit | undefined => {
    const e = currentEdit();
    return e && state?.allocation ? { allocation: state.allocation, ...e } : undefined;
  };
  ui.apply.addEventListener('click', () => {
    const e = editOf();
    if (e) send({ type: 'apply', ...e });
  });
  ui.exportModel.addEventListener('click', () => {
    const e = editOf();
    if (e) send({ type: 'export', what: 'model', ...e });
  });
  ui.exportPlan.addEventListener('click', () => {
    const e = editOf();
    if (e) send({ type: 'export', what: 'plan', ...e });
  });
  ui.cancel.addEventListener('click', () => send({ type: 'cancel' }));
  ui.openReport.addEventListener('click', () => {
    if (state?.result) send({ type: 'openReport', output: state.result.output });
  });
}

function ticks(): HTMLElement {
  const axis = h('span', { class: 'ticks', 'aria-hidden': 'true' });
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    const tick = h('span', {}, percent(t, 0));
    place(tick, t);
    axis.append(tick);
  }
  return axis;
}

function currentEdit(): BlockEdit | undefined {
  return state?.blocks ? { blocks: state.blocks, linears: state.linears ?? state.blocks.map(() => null) } : undefined;
}

function setEdit(e: BlockEdit): void {
  if (!state) return;
  state.blocks = e.blocks;
  state.linears = e.linears;
  edited();
}

function resetEdit(): void {
  if (!state?.plans || !state.allocation) return;
  const base = state.plans.plans[state.allocation];
  setEdit({ blocks: [...base.blocks], linears: base.linears.map((l) => (l ? [...l] : null)) });
}

function buildRows(layers: number): void {
  const info = state?.linearInfo ?? [];
  rows = Array.from({ length: layers }, (_, layer) => {
    const id = `block-${layer}`;
    const input = slider(id, `Block ${layer} sparsity`);
    input.setAttribute('aria-describedby', `${id}-share`);
    const markers = Object.fromEntries(ALLOCATION_KINDS.map((a) => [a, h('span', { class: `marker ${a}` })])) as Record<Allocation, HTMLElement>;
    const value = h('output', { for: id, class: 'value' });
    const shareBar = h('span', { class: 'share-bar' });
    const share = h('span', { id: `${id}-share`, class: 'share-text' });
    const details = h('div', { class: 'linears', id: `${id}-linears`, role: 'group', 'aria-label': `Block ${layer} linears`, hidden: '' });
    const toggle = h('button', { class: 'expand', type: 'button', 'aria-expanded': 'false', 'aria-controls': details.id, title: `Show block ${layer}'s per-linear ratios` }, `Block ${layer}`);
    input.addEventListener('input', () => {
      const e = currentEdit();
      if (e && state?.linearInfo) setEdit(moveBlock(e, layer, Number(input.value), state.linearInfo));
    });
    toggle.addEventListener('click', () => {
      if (!state) return;
      const open = new Set(state.expanded ?? []);
      if (open.has(layer)) open.delete(layer);
      else open.add(layer);
      state.expanded = [...open].sort((a, b) => a - b);
      save();
      render();
    });
    const linears = info.map((l, k): LinearRow => {
      const lid = `${id}-${l.label}`;
      const ls = slider(lid, `Block ${layer} ${l.label} sparsity`);
      const fill = h('span', { class: 'slider' }, ls);
      const lvalue = h('output', { for: lid, class: 'value' });
      ls.addEventListener('input', () => {
        const e = currentEdit();
        if (e && state?.linearInfo) setEdit(moveLinear(e, layer, k, Number(ls.value), state.linearInfo));
      });
      details.append(h('div', { class: 'row linear' }, h('label', { for: lid }, l.label), fill, lvalue, h('span', { class: 'size' }, `${l.size.toLocaleString('en-US')} weights`)));
      return { slider: ls, fill, value: lvalue };
    });
    ui.rows.append(
      h('div', { class: 'row' }, toggle, h('span', { class: 'slider' }, input, ...ALLOCATION_KINDS.map((a) => markers[a])), value, h('span', { class: 'share' }, shareBar, share)),
      details,
    );
    return { slider: input, markers, value, share, shareBar, toggle, details, linears };
  });
}

// ---- updates

function render(): void {
  const info = state?.info;
  for (const section of sections) section.hidden = !info;
  if (!state || !info) return renderBusy();
  ui.title.textContent = `Sparsity allocation: ${info.name}`;
  if (ui.method.childElementCount === 0) for (const m of PLAN_METHODS) ui.method.append(h('vscode-option', { value: m }, METHOD_LABELS[m]));
  if (ui.method.value !== state.method) ui.method.value = state.method;
  if (document.activeElement !== ui.planTarget) ui.planTarget.value = String(Math.round(state.target * 100));
  const plans = state.plans;
  const layers = plans ? plans.plans.uniform.blocks.length : 0;
  if (rows.length !== layers) {
    ui.rows.replaceChildren();
    buildRows(layers);
  }
  const allocation = state.allocation;
  if (allocation && ui.allocation.value !== allocation) ui.allocation.value = allocation;
  if (plans) {
    const c = plans.calibration;
    ui.planStatus.textContent = c.quick
      ? `Quick plans from ${c.windows} calibration windows (${formatSeconds(c.seconds)}). Full plans from ${c.fullWindows} windows take about ${formatSeconds(c.fullSeconds ?? 0)}.`
      : `Full plans from ${c.windows} calibration windows${c.seconds > 0 ? ` (${formatSeconds(c.seconds)})` : ''}.`;
    ui.full.textContent = c.quick && c.fullSeconds !== null ? `Full plan (about ${formatSeconds(c.fullSeconds)})` : 'Full plan';
  } else {
    ui.planStatus.textContent = running === 'plans' ? 'Planning…' : 'No plans yet.';
  }
  ui.scores.textContent = plans
    ? `Planned with ${METHOD_LABELS[plans.method]} at ${percent(plans.target)}. Estimated block error (lower is better): ${ALLOCATION_KINDS.map((a) => `${ALLOCATION_LABELS[a]} ${plans.plans[a].score.toFixed(3)}`).join(', ')}.`
    : '';
  const blocks = state.blocks;
  const expanded = new Set(state.expanded ?? []);
  if (plans && blocks && allocation) {
    const base = plans.plans[allocation];
    const linears = state.linears ?? blocks.map(() => null);
    const shares = estimate?.perBlock ?? base.perBlock;
    const maxShare = Math.max(...shares, ...base.perBlock, 1e-12);
    rows.forEach((row, i) => {
      const v = blocks[i]!;
      if (document.activeElement !== row.slider || Number(row.slider.value) !== v) row.slider.value = String(v);
      place(row.slider, v);
      row.slider.setAttribute('aria-valuetext', `${percent(v)} (${ALLOCATION_LABELS[allocation]} plan ${percent(base.blocks[i]!)})`);
      row.value.textContent = percent(v);
      for (const a of ALLOCATION_KINDS) {
        place(row.markers[a], plans.plans[a].blocks[i]!);
        row.markers[a].title = `${ALLOCATION_LABELS[a]}: ${percent(plans.plans[a].blocks[i]!)}`;
      }
      const share = shares[i]!;
      const change = share - base.perBlock[i]!;
      row.shareBar.style.width = `${((3 * share) / maxShare).toFixed(3)}em`;
      row.share.textContent = `${share.toFixed(3)}${Math.abs(change) >= 0.0005 ? ` (${change > 0 ? '+' : '−'}${Math.abs(change).toFixed(3)})` : ''}`;
      row.share.title = `Estimated relative error of block ${i}'s output`;
      const open = expanded.has(i);
      row.details.hidden = !open;
      row.toggle.setAttribute('aria-expanded', String(open));
      row.toggle.classList.toggle('has-linears', linears[i] !== null);
      row.linears.forEach((lr, k) => {
        const r = linears[i]?.[k] ?? v;
        if (document.activeElement !== lr.slider || Number(lr.slider.value) !== r) lr.slider.value = String(r);
        place(lr.slider, r);
        lr.value.textContent = percent(r);
      });
    });
    const modelWide = mean(blocks);
    if (document.activeElement !== ui.target) ui.target.value = String(modelWide);
    ui.target.setAttribute('aria-valuetext', percent(modelWide));
    ui.targetValue.textContent = percent(modelWide);
    ui.estimate.textContent = estimate
      ? `Estimate ${estimate.score.toFixed(3)} (${comparedWith(estimate.score, base.score, allocation)}), pruning ${percent(estimate.target)} of the linear weights. A ranking aid, not a perplexity prediction.`
      : `Estimate ${base.score.toFixed(3)} for the ${ALLOCATION_LABELS[allocation]} plan.`;
  } else {
    ui.estimate.textContent = '';
  }
  renderResult();
  renderBusy();
}

function renderResult(): void {
  const r = state?.result;
  ui.openReport.hidden = !r || r.planOnly;
  if (!r) return void (ui.result.textContent = '');
  if (r.planOnly) return void (ui.result.textContent = `Plan file written to ${r.output}.`);
  const verb = r.job === 'apply' ? 'Applied' : r.copied ? 'Exported (a copy of the applied model)' : 'Exported';
  ui.result.textContent = `${verb} to ${r.output}: ${percent(r.sparsity)} sparse` + (r.ppl !== null ? `, perplexity ${formatPerplexity(r.pplDense)} → ${formatPerplexity(r.ppl)}.` : '.');
}

function renderBusy(): void {
  const loaded = Boolean(state?.info);
  const ready = Boolean(state?.plans && state.blocks && state.allocation);
  const busy = running !== undefined;
  for (const control of [ui.apply, ui.exportModel, ui.exportPlan, ui.reset]) control.disabled = !ready || busy;
  ui.quick.disabled = busy || !loaded;
  ui.full.disabled = busy || !loaded;
  ui.method.disabled = busy || !loaded;
  ui.planTarget.disabled = busy || !loaded;
  ui.allocation.disabled = !ready;
  ui.target.disabled = !ready;
  for (const row of rows) {
    row.slider.disabled = !ready;
    row.toggle.disabled = !ready;
    for (const l of row.linears) l.slider.disabled = !ready;
  }
  ui.cancel.hidden = !busy;
  ui.progressBar.hidden = !busy;
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
  const e = currentEdit();
  if (!state?.allocation || !e) return;
  lastRequest += 1;
  send({ type: 'requestEstimate', requestId: lastRequest, allocation: state.allocation, ...e });
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

function receive(message: ToWebview): void {
  switch (message.type) {
    case 'init':
      if (state?.model !== message.model.path) {
        state = { model: message.model.path, method: message.method, target: message.target };
        estimate = undefined;
      }
      state.info = message.model;
      state.linearInfo = message.linears;
      ui.meta.textContent = `${message.model.modelType}, ${message.model.layers} decoder blocks, ${message.model.parameters.toLocaleString('en-US')} parameters. Calibration ${message.calibration}; evaluation ${message.evaluation}.`;
      save();
      return render();
    case 'plans': {
      if (!state) return;
      const plans = { method: message.method, target: message.target, calibration: message.calibration, plans: message.plans };
      // The same plans again (a reloaded page, a cache hit) keep the user's edits; new plans replace them.
      const keep = samePlans(state.plans, plans) && state.blocks && state.allocation;
      state.plans = plans;
      state.method = message.method;
      state.target = message.target;
      if (!keep) {
        state.allocation = state.allocation ?? 'uniform';
        const base = plans.plans[state.allocation];
        state.blocks = [...base.blocks];
        state.linears = base.linears.map((l) => (l ? [...l] : null));
        estimate = undefined;
      }
      if (running === 'plans') endJob(plans.calibration.quick ? 'Quick plans ready.' : 'Plans ready.');
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
    case 'done': {
      const { type: _type, ...result } = message;
      if (state) state.result = result;
      save();
      return endJob(result.planOnly ? 'Plan exported.' : result.job === 'apply' ? 'Applied.' : 'Exported.');
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
window.addEventListener('message', (event: MessageEvent<ToWebview>) => receive(event.data));
send({ type: 'ready' });
