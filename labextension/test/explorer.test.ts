/**
 * What the explorer draws for a record of a schema version it does not read: one message, as
 * text. Node has no DOM, so a minimal one stands in; it refuses innerHTML.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { renderExplorer } from '../src/explorer';
import { readSession } from '../src/record';

class FakeElement {
  className = '';
  children: FakeElement[] = [];
  private _text = '';

  constructor(readonly tagName: string) {}

  get textContent(): string {
    return this._text + this.children.map(c => c.textContent).join('');
  }

  set textContent(value: string) {
    this._text = value;
    this.children = [];
  }

  set innerHTML(_value: string) {
    throw new Error('the explorer must not parse record text as HTML');
  }

  appendChild(child: FakeElement): FakeElement {
    this.children.push(child);
    return child;
  }
}

(globalThis as unknown as { document: unknown }).document = {
  createElement: (tag: string) => new FakeElement(tag)
};

test('a record of another schema version shows one message instead of the explorer', () => {
  const host = new FakeElement('div');
  host.appendChild(new FakeElement('div')).textContent = 'the previous record';
  const hostile = '<img src=x onerror=alert(1)>';
  const session = readSession({
    schema_version: 2,
    problem: hostile,
    branches: [{ index: 0, status: 'answered', answer: '42' }],
    vote: { answer: '42', tally: [{ answer: '42', count: 1, branches: [0] }] }
  });
  renderExplorer(host as unknown as HTMLElement, session);

  assert.equal(host.children.length, 1);
  const [message] = host.children;
  assert.equal(message.tagName, 'div');
  assert.equal(message.className, 'jp-QwqExplorer-unsupported');
  assert.equal(
    message.textContent,
    'This record has schema version 2; this JupyterLab extension reads version 1. ' +
      'Upgrade jupyter_qwq (pip install -U jupyter_qwq) to read it.'
  );
  assert.equal(host.textContent.includes(hostile), false);

  const renamed = readSession({ schema_version: hostile });
  renderExplorer(host as unknown as HTMLElement, renamed);
  assert.equal(host.children.length, 1);
  assert.equal(host.children[0].textContent, renamed.unsupported);
  assert.ok(host.textContent.includes(hostile));
});
