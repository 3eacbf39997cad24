import * as path from 'node:path';
import * as vscode from 'vscode';
import { SAMPLE_CALIBRATION_TEXT, SAMPLE_EVALUATION_TEXT } from '../../engine/embedded';
import { PruneLensError } from '../../engine/errors';
import { REPORT_FILE } from '../../engine/export/report';
import type { ExplicitRemoval } from '../../engine/structured/structured-prune';
import { readConfig, runtimeOf, settingPath } from '../config';
import { reportErrors, requireTrust } from '../errors';
import { withEngineProgress } from '../progress';
import { runLabel, runPerplexity } from '../runs/output-record';
import type { Services } from '../services';
import { MODEL_VIEW } from '../trees/model-tree';
import { engineJobs } from '../worker/engine';
import type { JobOptions } from '../worker/protocol';
import { checkOutput, modelFolderOf, outputParent, removalOutputName } from './prune-options';
import { confirmReplace, outputPlace, type PruneRequest, type StructuredRequest } from './prune-wizard';

export async function openInModelView(services: Services, location: string): Promise<void> {
  await services.models.open(location);
  await vscode.commands.executeCommand(`${MODEL_VIEW}.focus`);
}

/** Shows a folder in the Explorer when the workspace holds it, otherwise in the operating system's file manager. */
export async function revealFolder(folder: string): Promise<void> {
  const uri = vscode.Uri.file(folder);
  await vscode.commands.executeCommand(vscode.workspace.getWorkspaceFolder(uri) ? 'revealInExplorer' : 'revealFileInOS', uri);
}

export async function runPrune(services: Services, request: PruneRequest): Promise<void> {
  requireTrust();
  const { output } = services;
  const { spec, allocation, calibration, evaluation } = request;
  const name = path.basename(modelFolderOf(request.model));
  const target = spec.nm ? `${spec.nm.n}:${spec.nm.m}` : `${+(100 * spec.sparsity).toFixed(1)}%`;
  output.info(
    `prune ${request.model} into ${request.out}: ${spec.method} ${target}, ${allocation.kind} allocation, ` +
      `${calibration ? `calibration ${calibration.nsamples} windows of ${calibration.seqlen} from ${calibration.file}` : 'no calibration'}, evaluation ${evaluation.file}`,
  );
  const stages = [
    ...(allocation.kind === 'owl' ? [{ stage: 'outliers', weight: 1 }] : []),
    ...(allocation.kind === 'besa' ? [{ stage: 'search', weight: 2 }] : []),
    { stage: 'evaluate dense', weight: 1 },
    { stage: 'prune', weight: 2 },
    { stage: 'evaluate pruned', weight: 1 },
  ];
  const record = await withEngineProgress(`PruneLens: pruning ${name} (${spec.method} ${target})`, stages, output, (control) =>
    engineJobs.run('prune', { ...request, runtime: runtimeOf(readConfig()) }, control),
  );
  const pct = (v: number): string => `${(100 * v).toFixed(2)}%`;
  output.info(`${record.output}: ${runPerplexity(record)}; ${pct(record.measured.sparsity)} of the pruned linears zero; per block ${record.layers.map((l) => pct(l.sparsity)).join(' ')}`);
  await services.runs.finish(record.output, record);
  // Not awaited: the command is done when the model is written, not when the message is dismissed.
  void vscode.window
    .showInformationMessage(`PruneLens: ${name} pruned with ${runLabel(record)}, perplexity ${perplexities(record.perplexity)}`, 'Open Report', 'Reveal in Explorer')
    .then((choice) =>
      reportErrors(services.output, async () => {
        if (choice === 'Open Report') await vscode.commands.executeCommand('markdown.showPreview', vscode.Uri.file(path.join(record.output, REPORT_FILE)));
        else if (choice === 'Reveal in Explorer') await revealFolder(record.output);
      }),
    );
}

/** The Model view's "Prune This Head/Layer": a structured run with an explicit list, into a new folder. */
export async function runRemoval(services: Services, model: string, removal: ExplicitRemoval): Promise<void> {
  requireTrust();
  const config = readConfig();
  const out = path.join(outputParent(outputPlace(services, model)), removalOutputName(model, removal));
  const check = checkOutput(out, model);
  if (!check.ok) throw new PruneLensError('output', check.problem);
  if (check.replaces && !(await confirmReplace(out))) return;
  const what = [...removal.heads.map(([l, h]) => `head ${l}.${h}`), ...removal.layers.map((l) => `layer ${l}`)].join(', ');
  const evaluation = { file: settingPath(config.evaluationText, SAMPLE_EVALUATION_TEXT), seqlen: config.seqlen };
  await structured(services, { model, out, overwrite: check.replaces, explicit: removal, evaluation }, `removing ${what} from`, `${what} removed from`);
}

/** The guided flow's structured choice: heads, channels or layers removed by score until the ratio is reached. */
export async function runStructured(services: Services, request: StructuredRequest): Promise<void> {
  requireTrust();
  const { target } = request;
  const units = [target.heads && 'heads', target.channels && 'channels', target.layers && 'layers'].filter(Boolean).join(' and ');
  const ratio = `${+(100 * target.ratio).toFixed(1)}%`;
  await structured(services, request, `removing ${ratio} of the parameters (${units}) from`, `${ratio} of the parameters (${units}) removed from`);
}

async function structured(services: Services, options: Omit<JobOptions<'structured'>, 'runtime'>, doing: string, done: string): Promise<void> {
  const name = path.basename(modelFolderOf(options.model));
  const calibration = options.calibration;
  services.output.info(
    `${doing} ${options.model} into ${options.out}: ${calibration ? `scores from ${calibration.nsamples} windows of ${calibration.seqlen} from ${calibration.file}, ` : ''}evaluation ${options.evaluation?.file}`,
  );
  const stages = [
    ...(calibration ? [{ stage: 'scores', weight: 1 }] : []),
    { stage: 'evaluate dense', weight: 1 },
    { stage: 'evaluate pruned', weight: 1 },
  ];
  const record = await withEngineProgress(`PruneLens: ${doing} ${name}`, stages, services.output, (control) =>
    engineJobs.run('structured', { ...options, runtime: runtimeOf(readConfig()) }, control),
  );
  services.output.info(`${record.output}: ${runPerplexity(record)}; ${record.parameters.after.toLocaleString('en-US')} parameters`);
  await services.runs.finish(record.output, record);
  void vscode.window
    .showInformationMessage(`PruneLens: ${done} ${name}, perplexity ${perplexities(record.perplexity)}`, 'Open in Model View', 'Reveal in Explorer')
    .then((choice) =>
      reportErrors(services.output, async () => {
        if (choice === 'Open in Model View') await openInModelView(services, record.output);
        else if (choice === 'Reveal in Explorer') await revealFolder(record.output);
      }),
    );
}

/** Scores of the Model view's model, shown in its tree. */
export async function computeScores(services: Services): Promise<void> {
  requireTrust();
  const model = services.models.current?.summary.path;
  if (!model) throw new PruneLensError('usage', 'open a model in the PruneLens Model view first');
  const config = readConfig();
  const calibration = { file: settingPath(config.calibrationText, SAMPLE_CALIBRATION_TEXT), nsamples: config.nsamples, seqlen: config.seqlen, seed: 0 };
  if (services.models.current?.summary.experts) {
    // A MoE model's unit is the expert: its routing share, mean routing weight and REAP.
    services.output.info(`expert statistics of ${model}: ${calibration.nsamples} windows of ${calibration.seqlen} from ${calibration.file}`);
    const stats = await withEngineProgress(`PruneLens: expert statistics of ${path.basename(model)}`, [{ stage: 'expert statistics', weight: 1 }], services.output, (control) =>
      engineJobs.run('expertStats', { model, calibration, runtime: runtimeOf(config) }, control),
    );
    services.models.setExpertStats(model, stats);
    void vscode.window.showInformationMessage(`PruneLens: expert statistics of ${path.basename(model)} are in the Model view`);
    return;
  }
  services.output.info(`scores of ${model}: ${calibration.nsamples} windows of ${calibration.seqlen} from ${calibration.file}`);
  const scores = await withEngineProgress(`PruneLens: importance scores of ${path.basename(model)}`, [{ stage: 'scores', weight: 1 }], services.output, (control) =>
    engineJobs.run('scores', { model, calibration, runtime: runtimeOf(config) }, control),
  );
  services.models.setScores(model, scores);
}

function perplexities(p: { dense: number | null; pruned: number | null }): string {
  const f = (v: number | null): string => (v === null ? '-' : v.toFixed(3));
  return `${f(p.dense)} → ${f(p.pruned)}`;
}
