/**
 * Which text is math, which dollars are money, and what reaches JupyterLab's markdown parser:
 * the cases of tests/unit/test_dollars.py, so the explorer and the Python views agree.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { pieces } from '../src/dollars';
import { DOLLAR, fenced, protect, restore } from '../src/markdown';
import { SOLVE_MIME, cellMime, isSolveSource } from '../src/plugin';

const HOUSE = 'Josh buys a house for $80,000 and then puts in $50,000 in repairs.';
const EGGS = 'She lays \\[ 3 \\text{ eggs/day} \\times 16 \\] eggs; so $x^2$ is \\(x \\cdot x\\).';

function math(text: string): string[] {
  return pieces(text)
    .filter(p => p.kind === 'math')
    .map(p => p.text);
}

test('dollar amounts are not math', () => {
  assert.deepEqual(math(HOUSE), []);
  assert.deepEqual(math('It costs $5 and $6.'), []);
  assert.deepEqual(math('from $ 3 to $ 4'), []);
});

test('display, inline and dollar math are found with their delimiters', () => {
  assert.deepEqual(math(EGGS), ['\\[ 3 \\text{ eggs/day} \\times 16 \\]', '$x^2$', '\\(x \\cdot x\\)']);
  assert.deepEqual(math('$$\\frac{1}{2}$$ and $a$, then $5.'), ['$$\\frac{1}{2}$$', '$a$']);
  assert.deepEqual(math('\\[\na\n+ b\n\\]'), ['\\[\na\n+ b\n\\]']);
});

test('a bare boxed answer becomes inline math, nested braces included', () => {
  assert.deepEqual(math('So \\boxed{\\frac{1}{2}} it is.'), ['\\(\\boxed{\\frac{1}{2}}\\)']);
  assert.deepEqual(math('\\(\\boxed{3}\\)'), ['\\(\\boxed{3}\\)']);
  assert.deepEqual(math('an unclosed \\boxed{3'), []);
});

test('code holds no math', () => {
  const text = 'Use `$x$` here\n```python\nprint("$5 and $6", r"\\(a\\)")\n```\nthen $y$.';
  assert.deepEqual(math(text), ['$y$']);
  assert.deepEqual(
    pieces(text)
      .filter(p => p.kind === 'code')
      .map(p => p.text),
    ['`$x$`', '```python\nprint("$5 and $6", r"\\(a\\)")\n```']
  );
  assert.deepEqual(math('```\nan unclosed $x$ fence'), []);
});

test('money dollars reach the parser as elements of their own, math as placeholders', () => {
  const { markdown, math } = protect(`${HOUSE} ${EGGS} **bold**`);
  assert.ok(markdown.includes(`${DOLLAR}80,000 and then puts in ${DOLLAR}50,000`));
  assert.ok(!/\$/.test(markdown), markdown);
  assert.ok(markdown.includes('**bold**'));
  assert.equal(math.length, 3);
  assert.equal(restore(markdown, math).includes('\\[ 3 \\text{ eggs/day} \\times 16 \\]'), true);
});

test('raw HTML in the text is escaped, in math too', () => {
  const { markdown, math } = protect('<script>alert(1)</script> <img src=x onerror=alert(2)> $a<b$');
  assert.ok(!markdown.includes('<script') && !markdown.includes('<img'), markdown);
  assert.deepEqual(math, ['$a&lt;b$']);
});

test('a code block gets a fence longer than its backticks', () => {
  assert.equal(fenced('x = 1', 'python'), '```python\nx = 1\n```\n');
  assert.equal(fenced('s = "````"', 'python'), '`````python\ns = "````"\n`````\n');
});

test('a %%solve cell is edited as plain text, any other cell as the notebook says', () => {
  assert.equal(cellMime('%%solve --branches 4\nJosh buys a house for $80,000', 'text/x-ipython'), SOLVE_MIME);
  assert.equal(cellMime('\n  %%solve\nx', 'text/x-ipython'), SOLVE_MIME);
  assert.equal(cellMime('%%solver\nx', 'text/x-ipython'), 'text/x-ipython');
  assert.equal(cellMime('x = 1\n%%solve', 'text/x-ipython'), 'text/x-ipython');
  assert.equal(isSolveSource('%solve What is 6 times 7?'), false);
});
