/** The OpenAI-compatible HTTP server over the local engine (`qwenlong serve`). */
export { createServer, TextStream, type QwenlongServer, type ServerOptions } from './server.js';
