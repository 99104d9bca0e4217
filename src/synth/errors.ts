/** An error the user can act on: it names the argument or file at fault. The CLI prints its message, no stack. */
export class SynthError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SynthError';
  }
}
