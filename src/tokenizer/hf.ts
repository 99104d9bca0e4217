/**
 * Hugging Face tokenizers (`tokenizer.json`, with `tokenizer_config.json` beside it when present) through
 * `@huggingface/tokenizers`, and chat templates through `@huggingface/jinja` (the model's own template, or a plain
 * fallback for models without one).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | string;
  content: string;
}

/** What the engine needs of any tokenizer. */
export interface TextTokenizer {
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosIds: readonly number[];
  encode(text: string, opts?: { bos?: boolean; eos?: boolean }): number[];
  decode(ids: readonly number[]): string;
  /** The chat prompt for `messages` (with the assistant turn opened when addGenerationPrompt, the default). */
  applyChatTemplate(messages: readonly ChatMessage[], opts?: { addGenerationPrompt?: boolean }): string;
}

/** The fallback chat format for models without a template: role headers and blank lines. */
export const PLAIN_CHAT_TEMPLATE =
  "{% for m in messages %}{{ m['role'] | capitalize }}: {{ m['content'] }}\n\n{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}";

export function renderChat(template: string, messages: readonly ChatMessage[], addGenerationPrompt: boolean, extra: Record<string, unknown> = {}): string {
  if (!Array.isArray(messages) || messages.some((m) => typeof m?.role !== 'string' || typeof m?.content !== 'string')) {
    throw new TypeError('applyChatTemplate: messages must be an array of { role, content } strings');
  }
  return new Template(template).render({ messages, add_generation_prompt: addGenerationPrompt, ...extra });
}

function readJson(file: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new RangeError(`${file}: not a JSON file (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new RangeError(`${file}: not a JSON object`);
  return v as Record<string, unknown>;
}

export class HfTokenizer implements TextTokenizer {
  readonly #tok: Tokenizer;
  readonly #template: string;
  /** Whether the model ships its own chat template (else the plain fallback renders chats). */
  readonly hasChatTemplate: boolean;
  readonly #config: Record<string, unknown>;
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosIds: readonly number[];

  /** From a tokenizer.json file, or a folder holding one. */
  constructor(path: string) {
    const file = existsSync(path) && statSync(path).isDirectory() ? join(path, 'tokenizer.json') : path;
    if (!existsSync(file)) throw new Error(`HfTokenizer: no tokenizer.json at ${path}`);
    const json = readJson(file);
    const cfgPath = join(dirname(file), 'tokenizer_config.json');
    this.#config = existsSync(cfgPath) ? readJson(cfgPath) : {};
    try {
      this.#tok = new Tokenizer(json, this.#config);
    } catch (e) {
      throw new RangeError(`HfTokenizer: ${file} could not be loaded (${(e as Error).message})`);
    }
    const model = json.model as { vocab?: Record<string, number> | unknown[] } | undefined;
    const added = (json.added_tokens as { id: number }[] | undefined) ?? [];
    const base = Array.isArray(model?.vocab) ? model.vocab.length : Object.keys(model?.vocab ?? {}).length;
    this.vocabSize = Math.max(base, ...added.map((t) => t.id + 1));
    const id = (v: unknown): number | undefined => {
      const text = typeof v === 'string' ? v : (v as { content?: string } | undefined)?.content;
      return text === undefined ? undefined : this.#tok.token_to_id(text) ?? undefined;
    };
    this.bosId = id(this.#config.bos_token);
    const eos = id(this.#config.eos_token);
    this.eosIds = eos === undefined ? [] : [eos];
    this.#template = typeof this.#config.chat_template === 'string' ? this.#config.chat_template : PLAIN_CHAT_TEMPLATE;
    this.hasChatTemplate = typeof this.#config.chat_template === 'string';
  }

  encode(text: string, opts: { bos?: boolean; eos?: boolean } = {}): number[] {
    if (typeof text !== 'string') throw new TypeError('HfTokenizer.encode: text must be a string');
    const ids = this.#tok.encode(text, { add_special_tokens: false }).ids;
    if (opts.bos && this.bosId !== undefined) ids.unshift(this.bosId);
    if (opts.eos && this.eosIds.length > 0) ids.push(this.eosIds[0]!);
    return ids;
  }

  decode(ids: readonly number[]): string {
    return this.#tok.decode([...ids], { skip_special_tokens: true });
  }

  applyChatTemplate(messages: readonly ChatMessage[], opts: { addGenerationPrompt?: boolean } = {}): string {
    const special = (k: string) => {
      const v = this.#config[k];
      return typeof v === 'string' ? v : (v as { content?: string } | undefined)?.content ?? '';
    };
    return renderChat(this.#template, messages, opts.addGenerationPrompt ?? true, { bos_token: special('bos_token'), eos_token: special('eos_token') });
  }
}
