/** Tables found in documents: markdown/pipe tables (HTML tables are rendered as pipe rows first) and CSV. */

export interface TableRow {
  cells: string[];
  /** Character span of the row in its document's text. */
  start: number;
  end: number;
}

export interface DocTable {
  header: string[];
  rows: TableRow[];
}

const isPipeRow = (line: string): boolean => (line.match(/\|/g)?.length ?? 0) >= 1 && /\S\s*\|\s*\S/.test(line);
const isSeparator = (line: string): boolean => /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/.test(line);

function splitPipe(line: string): string[] {
  let s = line.trim();
  if (s.startsWith('|')) s = s.slice(1);
  if (s.endsWith('|')) s = s.slice(0, -1);
  return s.split('|').map((c) => c.trim());
}

/** Pipe tables in `text`: runs of at least 3 lines with the same number (≥ 2) of `|`-separated cells. */
export function findPipeTables(text: string): DocTable[] {
  const tables: DocTable[] = [];
  const lines: Array<{ text: string; start: number; end: number }> = [];
  let pos = 0;
  for (const l of text.split('\n')) {
    lines.push({ text: l, start: pos, end: pos + l.length });
    pos += l.length + 1;
  }
  let i = 0;
  while (i < lines.length) {
    const first = lines[i];
    if (!first || !isPipeRow(first.text) || isSeparator(first.text)) {
      i++;
      continue;
    }
    const header = splitPipe(first.text);
    let j = i + 1;
    const rows: TableRow[] = [];
    if (lines[j] && isSeparator(lines[j]!.text)) j++;
    for (; j < lines.length; j++) {
      const l = lines[j]!;
      if (!isPipeRow(l.text) || isSeparator(l.text)) break;
      const cells = splitPipe(l.text);
      if (cells.length !== header.length) break;
      const lead = l.text.length - l.text.trimStart().length;
      rows.push({ cells, start: l.start + lead, end: l.start + l.text.trimEnd().length });
    }
    if (header.length >= 2 && rows.length >= 2) tables.push({ header, rows });
    i = Math.max(j, i + 1);
  }
  return tables;
}

/** Parse CSV (RFC 4180 quoting) keeping each record's character span; null when it is not a table. */
export function parseCsv(text: string): DocTable | null {
  const records: TableRow[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    const start = i;
    const cells: string[] = [];
    let cell = '';
    let inQuotes = false;
    for (; i < n; i++) {
      const ch = text[i]!;
      if (inQuotes) {
        if (ch === '"') {
          if (text[i + 1] === '"') {
            cell += '"';
            i++;
          } else inQuotes = false;
        } else cell += ch;
      } else if (ch === '"' && cell.length === 0) inQuotes = true;
      else if (ch === ',') {
        cells.push(cell.trim());
        cell = '';
      } else if (ch === '\n' || ch === '\r') break;
      else cell += ch;
    }
    cells.push(cell.trim());
    let end = i;
    while (end > start && /\s/.test(text[end - 1]!)) end--;
    if (text[i] === '\r' && text[i + 1] === '\n') i++;
    i++;
    if (cells.some((c) => c.length > 0)) records.push({ cells, start, end });
  }
  const head = records[0];
  if (!head || head.cells.length < 2 || records.length < 3) return null;
  const rows = records.slice(1).filter((r) => r.cells.length === head.cells.length);
  return { header: head.cells, rows };
}

/** A cell's numeric value (`1,234.5`, `$3.2`, `45%`, `(12)` as −12), or null. */
export function parseCellNumber(cell: string): number | null {
  const s = cell.replace(/[$€£,%\s]/g, '');
  const neg = /^\(.*\)$/.test(s);
  const core = neg ? s.slice(1, -1) : s;
  if (!/^-?\d+(\.\d+)?$/.test(core)) return null;
  const v = Number(core);
  return Number.isFinite(v) ? (neg ? -v : v) : null;
}
