/**
 * The model's text as JupyterLab renders a markdown cell, with JupyterLab's own machinery from the
 * renderer options: its markdown parser (which highlights fenced code with CodeMirror's language
 * registry), its HTML sanitizer and its LaTeX typesetter (MathJax).
 *
 * As JupyterLab's `renderMarkdown` does, math is taken out before the markdown parser sees it and
 * put back after; which parts are math is decided by dollars.ts (money dollars stay text). The
 * text is untrusted: raw HTML in it is escaped, and the result goes through the sanitizer.
 */

import { IRenderMime } from '@jupyterlab/rendermime-interfaces';

import { MONEY, pieces } from './dollars';

/** Draws a piece of the model's prose, or a block of code, into a host element. */
export interface IProse {
  text(host: HTMLElement, source: string): Promise<void>;
  code(host: HTMLElement, source: string, language: string): Promise<void>;
}

/** A `$` the typesetter must not pair: an element of its own, which MathJax does not pair across. */
export const DOLLAR = '<span class="jp-QwqExplorer-dollar">&#36;</span>';

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function placeholder(n: number): string {
  return `@@qwq${n}@@`;
}

/**
 * Markdown with its math replaced by placeholders, money dollars by DOLLAR and raw HTML escaped;
 * and the math, escaped for HTML, to put back.
 */
export function protect(text: string): { markdown: string; math: string[] } {
  const math: string[] = [];
  const markdown = pieces(text)
    .map(piece => {
      if (piece.kind === 'code') {
        return piece.text;
      }
      if (piece.kind === 'math') {
        math.push(escapeHtml(piece.text));
        return placeholder(math.length - 1);
      }
      return piece.text.replace(/</g, '&lt;').replace(MONEY, DOLLAR);
    })
    .join('');
  return { markdown, math };
}

export function restore(html: string, math: string[]): string {
  return html.replace(/@@qwq(\d+)@@/g, (whole, n) => math[Number(n)] ?? whole);
}

/** A fence longer than any run of backticks in `code`. */
export function fenced(code: string, language: string): string {
  const longest = Math.max(2, ...(code.match(/`+/g) ?? []).map(run => run.length));
  const fence = '`'.repeat(longest + 1);
  return `${fence}${language}\n${code}\n${fence}\n`;
}

/** Plain text, for a host without a markdown parser (and for tests without a DOM). */
export const plainProse: IProse = {
  text: (host, source) => {
    host.textContent = source;
    return Promise.resolve();
  },
  code: (host, source) => {
    const pre = document.createElement('pre');
    pre.textContent = source;
    host.appendChild(pre);
    return Promise.resolve();
  }
};

/** The prose renderer of a mime renderer's options; plain text when it has no markdown parser. */
export function jupyterProse(options: IRenderMime.IRendererOptions): IProse {
  const parser = options.markdownParser;
  if (!parser) {
    return plainProse;
  }
  const render = async (host: HTMLElement, markdown: string, math: string[]): Promise<void> => {
    const html = restore(await parser.render(markdown), math);
    host.innerHTML = options.sanitizer.sanitize(html);
    host.classList.add('jp-RenderedHTMLCommon');
    if (math.length && options.latexTypesetter) {
      await options.latexTypesetter.typeset(host);
    }
  };
  return {
    text: (host, source) => {
      const { markdown, math } = protect(source);
      return render(host, markdown, math);
    },
    code: (host, source, language) => render(host, fenced(source, language), [])
  };
}
