/** Runs `action` once a burst of triggers has been quiet for `ms`: file watchers fire once per file. */
export class Debouncer {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ms: number,
    private readonly action: () => void,
  ) {}

  trigger(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(this.action, this.ms);
  }

  dispose(): void {
    clearTimeout(this.timer);
  }
}
