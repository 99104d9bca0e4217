import type { SourceDocument } from './documents.js';
import type { DialoguePlan } from './compose.js';
import { fillerRequest } from './compose.js';
import type { Rng } from './rng.js';
import type { TokenCounter } from './tokenizer.js';
import type { BuiltContext } from './context.js';

const USER = 'User: ';
const ASSISTANT = '\nAssistant: ';
/** The labels a conversation adds around requests and replies. */
export const DIALOGUE_MARKUP = `${USER}${ASSISTANT}`;

/**
 * The conversation for a dialogue-memory question: filler turns (other requests, replies drawn from the
 * documents) up to the target length, with the planted turns spread through it in order.
 */
export function buildDialogueContext(plan: DialoguePlan, docs: Map<string, SourceDocument>, counter: TokenCounter, target: number, rng: Rng): BuiltContext | { reject: string } {
  const text = (s: { doc: string; start: number; end: number }) => docs.get(s.doc)!.text.slice(s.start, s.end);
  const turn = (request: string, reply: string) => `${USER}${request}${ASSISTANT}${reply}\n\n`;
  const plantedKeys = new Set(plan.planted.map((s) => `${s.doc}:${s.start}`));
  const fillerPool = rng.shuffle(plan.pool.filter((s) => !plantedKeys.has(`${s.doc}:${s.start}`)));
  const plantedTurns = plan.planted.map((s) => turn(plan.request, text(s)));
  let used = plantedTurns.reduce((a, t) => a + counter.count(t), 0);
  if (used > target * 1.05) return { reject: 'evidence-too-long' };
  const fillers: string[] = [];
  for (const s of fillerPool) {
    if (target - used < Math.max(8, target * 0.01)) break;
    const t = turn(fillerRequest(rng, plan.request), text(s));
    const n = counter.count(t);
    if (used + n > target) continue;
    fillers.push(t);
    used += n;
  }
  // Planted turns go at sorted random positions, so their order in the conversation is the plan's order.
  const positions = Array.from({ length: plantedTurns.length }, () => rng.int(fillers.length + 1)).sort((a, b) => a - b);
  const turns: Array<{ text: string; planted: number }> = fillers.map((t) => ({ text: t, planted: -1 }));
  for (let i = plantedTurns.length - 1; i >= 0; i--) turns.splice(positions[i]!, 0, { text: plantedTurns[i]!, planted: i });
  let context = '';
  const evidence: BuiltContext['evidence'] = [];
  for (const t of turns) {
    if (t.planted >= 0) {
      const s = plan.planted[t.planted]!;
      const at = context.length + t.text.indexOf(ASSISTANT) + ASSISTANT.length;
      evidence[t.planted] = { doc: s.doc, start: at, end: at + (s.end - s.start) };
    }
    context += t.text;
  }
  context = context.trimEnd();
  const first = Math.min(...evidence.map((e) => e.start));
  return { context, tokens: counter.count(context), evidence: [evidence[plan.which]!], docs: [...new Set(plan.planted.map((s) => s.doc))], depth: Math.round((first / context.length) * 1000) / 1000 };
}
