/** Long-context data synthesis: documents → facts → knowledge graph → verifiable questions in long contexts. */
export { synthesize, type SynthOptions, type SynthSummary } from './pipeline.js';
export { registerSynthCommand } from './cli.js';
export { SynthError } from './errors.js';
export { TASKS, type Task, type SynthQuestion, type EvidenceSpan, type Span, type Extraction, type Mention, type RelationFact, type NumericFact, type EntityRef } from './types.js';
export { loadDocuments, loadBundledCorpus, bundledCorpusDir, expandInputs, type SourceDocument, type Passage } from './documents.js';
export { extractDocument, parseQuantity, relationCluster } from './extract.js';
export { KnowledgeGraph } from './kg.js';
export { Graph, type GEdge, type GEntity, type GNumber } from './graph.js';
export { COMPOSERS, type Draft, type ComposeEnv } from './compose.js';
export { ContextBuilder, type ContextRequest, type BuiltContext } from './context.js';
export { checkEvidence, checkSupported, checkLeak, checkLength, DuplicateFilter } from './checks.js';
export { LlmClient, llmExtractDocument, llmVerify, type LlmOptions } from './llm.js';
export { generateWorld, writeWorld, worldVocabulary, type World, type WorldOptions } from './world.js';
export { loadTokenCounter, loadTokenizerFile, bundledQwen3TokenizerPath, estimateTokenCounter, type TokenCounter } from './tokenizer.js';
export { validateQuestion, readQuestions, questionLine } from './schema.js';
export { sequenceRatio, listF1, isCorrect } from './scoring.js';
export { findPipeTables, parseCsv, type DocTable } from './tables.js';
export { Rng } from './rng.js';
