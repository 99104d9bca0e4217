/**
 * AEPO's controller (QwenLong-L1.5 §4.4): a hysteresis switch on the batch entropy of the current rollouts. Off at
 * the start; when the entropy rises above `entropyHigh` it turns on, and the update drops the negative-advantage
 * sequences (`dropNegative`); when the entropy falls below `entropyLow` it turns off and negative gradients return.
 * Between the bounds the switch keeps its state.
 */
export interface AepoOptions {
  entropyLow: number;
  entropyHigh: number;
  /** Called on each switch. */
  onSwitch?: (event: AepoSwitch) => void;
}

export interface AepoSwitch {
  step: number;
  entropy: number;
  dropNegative: boolean;
}

export class AepoController {
  readonly entropyLow: number;
  readonly entropyHigh: number;
  #on = false;
  #step = 0;
  readonly switches: AepoSwitch[] = [];
  #onSwitch: ((event: AepoSwitch) => void) | undefined;

  constructor(opts: AepoOptions) {
    if (!(Number.isFinite(opts.entropyLow) && Number.isFinite(opts.entropyHigh) && opts.entropyLow >= 0 && opts.entropyLow < opts.entropyHigh)) {
      throw new RangeError(`AepoController: need 0 <= entropyLow < entropyHigh, got ${opts.entropyLow} and ${opts.entropyHigh}`);
    }
    this.entropyLow = opts.entropyLow;
    this.entropyHigh = opts.entropyHigh;
    this.#onSwitch = opts.onSwitch;
  }

  /** Whether the next update drops negative-advantage sequences. */
  get dropNegative(): boolean {
    return this.#on;
  }

  /** Feed the batch entropy of this step's rollouts (before the update); returns the decision for this update. */
  update(batchEntropy: number): boolean {
    if (!Number.isFinite(batchEntropy) || batchEntropy < 0) throw new RangeError(`AepoController.update: entropy must be a finite number >= 0, not ${batchEntropy}`);
    this.#step++;
    const next = this.#on ? !(batchEntropy < this.entropyLow) : batchEntropy > this.entropyHigh;
    if (next !== this.#on) {
      this.#on = next;
      const event = { step: this.#step, entropy: batchEntropy, dropNegative: next };
      this.switches.push(event);
      this.#onSwitch?.(event);
    }
    return this.#on;
  }

  state(): { on: boolean; step: number; switches: AepoSwitch[] } {
    return { on: this.#on, step: this.#step, switches: this.switches.slice() };
  }

  restore(state: { on: boolean; step: number; switches?: AepoSwitch[] }): void {
    this.#on = !!state.on;
    this.#step = state.step;
    this.switches.splice(0, this.switches.length, ...(state.switches ?? []));
  }
}
