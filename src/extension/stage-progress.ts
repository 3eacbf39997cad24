import type { EngineEvent } from '../engine/progress';

/** A stage a job goes through (the engine's stage name) and its share of the whole bar. */
export interface StageWeight {
  stage: string;
  weight: number;
}

export interface ProgressStep {
  /** Percent of the whole job since the previous step. */
  increment: number;
  message: string;
}

const MIN_INTERVAL_MS = 100;

/**
 * Turns the engine's stage counts (every stage runs from 0 to its own total) into the increments of
 * one notification bar. The stages of a job are known before it starts, so each gets a fixed share;
 * a stage that was not expected still names itself in the message but does not move the bar.
 * Steps are thinned out: evaluation reports every ORT run, far more often than a bar needs to redraw.
 */
export class StageProgress {
  private readonly spans = new Map<string, { start: number; share: number }>();
  private reported = 0;
  private lastTime = -Infinity;

  constructor(
    stages: readonly StageWeight[],
    private readonly now: () => number = Date.now,
  ) {
    const total = stages.reduce((n, s) => n + s.weight, 0);
    let start = 0;
    for (const { stage, weight } of stages) {
      const share = (100 * weight) / total;
      this.spans.set(stage, { start, share });
      start += share;
    }
  }

  update(event: Extract<EngineEvent, { type: 'stage' }>): ProgressStep | undefined {
    const time = this.now();
    const finished = event.done >= event.total;
    if (!finished && time - this.lastTime < MIN_INTERVAL_MS) return undefined;
    this.lastTime = time;
    const span = this.spans.get(event.stage);
    const position = span ? span.start + (span.share * Math.min(event.done, event.total)) / event.total : this.reported;
    const increment = Math.max(0, position - this.reported);
    this.reported += increment;
    return { increment, message: `${event.stage}: ${event.detail ?? `${event.done}/${event.total}`}` };
  }
}
