/**
 * Which parts of the model's text are math, and which dollar signs are money: the rule of
 * jupyter_qwq/views/dollars.py, ported so the explorer and the Python views agree (the same
 * cases are tested on both sides).
 *
 * JupyterLab's own `removeMath` pairs any two dollar signs, so "$80,000 and then puts in $50,000"
 * would become math. Here a `$` counts as math only by pandoc's rule: the opening `$` has a
 * non-space right after it, the closing one a non-space right before it and no digit after it.
 * `\[..\]`, `\(..\)` and `$$..$$` are math; a `\boxed{..}` outside math is made inline math so
 * that it shows as a boxed answer. Code (fenced blocks and inline code spans) holds no math.
 */

const MATH = /\$\$[\s\S]+?\$\$|\\\[[\s\S]+?\\\]|\\\([\s\S]+?\\\)|\$(?=\S)[^$\n]*?(?<=\S)\$(?!\d)/g;
const CODE = /(`{3,}|~{3,})[^\n]*\n[\s\S]*?(?:\n\1[^\S\n]*(?=\n|$)|$)|(`+)[^`\n][\s\S]*?\2(?!`)/g;
const BOXED = '\\boxed{';

export interface IPiece {
  text: string;
  kind: 'text' | 'math' | 'code';
}

/** The end (exclusive) of the brace group opening at `open`, or -1 when it does not close. */
function closingBrace(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === '\\') {
      i++;
    } else if (text[i] === '{') {
      depth++;
    } else if (text[i] === '}' && --depth === 0) {
      return i + 1;
    }
  }
  return -1;
}

/** Text outside math and code: a bare `\boxed{..}` becomes inline math. */
function boxedPieces(text: string, out: IPiece[]): void {
  let last = 0;
  let at = text.indexOf(BOXED);
  while (at >= 0) {
    const end = closingBrace(text, at + BOXED.length - 1);
    if (end < 0) {
      break;
    }
    out.push({ text: text.slice(last, at), kind: 'text' });
    out.push({ text: `\\(${text.slice(at, end)}\\)`, kind: 'math' });
    last = end;
    at = text.indexOf(BOXED, end);
  }
  out.push({ text: text.slice(last), kind: 'text' });
}

/** The matches of `pattern` in `text` as pieces of `kind`; what lies between them goes to `between`. */
function split(
  text: string,
  pattern: RegExp,
  kind: IPiece['kind'],
  between: (text: string, out: IPiece[]) => void,
  out: IPiece[]
): void {
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    between(text.slice(last, match.index), out);
    out.push({ text: match[0], kind });
    last = (match.index ?? 0) + match[0].length;
  }
  between(text.slice(last), out);
}

/** `text` in pieces of text, math (delimiters included) and code, in order; empty ones left out. */
export function pieces(text: string): IPiece[] {
  const out: IPiece[] = [];
  split(text, CODE, 'code', (rest, into) => split(rest, MATH, 'math', boxedPieces, into), out);
  return out.filter(p => p.text);
}

/** Every dollar sign (`$` or an escaped `\$`) of a piece of text that is not math. */
export const MONEY = /\\?\$/g;
