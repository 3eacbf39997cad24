import * as path from 'node:path';
import { EngineJobs } from './engine-jobs';

/** The extension's engine jobs: esbuild bundles dist/extension.js and dist/engine-worker.js side by side. */
export const engineJobs = new EngineJobs(path.join(__dirname, 'engine-worker.js'));
