/** The memory agent: chunked reading of inputs far beyond the context window, on the local engine or an endpoint. */
export { MemoryAgent, CHAT_MEMORY_PROMPTS, PLAIN_MEMORY_PROMPTS, type MemoryAgentOptions, type MemoryPrompts, type AgentQuery, type AgentRun, type AgentCall, type AgentProgress } from './memory_agent.js';
export { LocalBackend, OpenAIBackend, hasOwnChatTemplate, type AgentBackend, type BackendCall, type BackendReply, type LocalBackendOptions, type OpenAIBackendOptions } from './backend.js';
export { chunkText, readFiles, type Chunk, type DocumentSource } from './chunks.js';
export { memoryTokenizer, memoryModelConfig, memoryWorld, memoryWorldText, writeMemoryWorld, memoryWorldItem, memoryWorldItems, oracleTrace, lengthBuckets, TINY_MEMORY, type MemoryWorld, type OracleStep } from './tiny_memory.js';
export { growVocabulary, oracleExamples, sftMemory, trainMemoryRl, memoryRows, type MemorySftOptions, type MemoryRlOptions, type MemoryRlRecord } from './train_memory.js';
