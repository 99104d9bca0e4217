// Child process for the resume test: runs a synthesis that the test kills part way.
import { synthesize } from '../../src/synth/pipeline.js';

const [out, count, target, maxDocs] = process.argv.slice(2);
await synthesize({ inputs: [], out: out!, count: Number(count), targetTokens: Number(target), seed: 'resume', maxDocs: Number(maxDocs) });
