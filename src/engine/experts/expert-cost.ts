// Plain data only: the heat map's page (a browser bundle) reads this type too.

/** What a list would do, priced before anything runs (the heat map shows it before Apply). */
export interface ExpertCost {
  /** Experts cut out of every sparse layer (the count all layers share); the config's count becomes experts - this. */
  removedPerLayer: number;
  parametersRemoved: number;
  bytesRemoved: number;
  /** parametersRemoved over the model's parameters. */
  fraction: number;
  /** Per sparse layer: experts a token can still be routed to (neither removed nor masked). */
  left: Record<string, number>;
  /** Per layer with masked experts: how many (zero weights and a router row that nearly never wins; they save nothing). */
  masked: Record<string, number>;
}
