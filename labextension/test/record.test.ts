/**
 * The record reader on the records jupyter_qwq writes and on hostile ones: it never throws, keeps
 * record text as plain text, and refuses a schema version it does not read.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  SCHEMA_VERSION,
  decodeConfidence,
  imageDataUri,
  readSession,
  sparkline,
  stripAnsi,
  unsupportedReason
} from '../src/record';

const UPGRADE = 'this JupyterLab extension reads version 1. Upgrade jupyter_qwq (pip install -U jupyter_qwq) to read it.';
const HTML = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>';

/** A record as Session.to_dict() writes it: two branches, one with a code step and its outputs. */
function record(): Record<string, unknown> {
  return {
    problem: 'What is 6 * 7?',
    config: { temperature: 0.6, top_p: 0.95, seed: 3 },
    engine: { kind: 'llamacpp', model: 'qwq-32b', endpoint: 'http://127.0.0.1:8080', logprobs: true },
    branches: [
      {
        index: 0,
        prompt: 'tir',
        status: 'answered',
        answer: '42',
        answer_source: 'boxed',
        steps: [
          { kind: 'text', text: 'Compute it.', reasoning: 'easy', confidence: '6AP6AP//AQA=', duration: 0.5 },
          {
            kind: 'code',
            code: 'print(6 * 7)',
            outputs: [{ output_type: 'stream', name: 'stdout', text: ['4', '2\n'] }],
            execution: 'ok',
            duration: 0.25
          }
        ],
        completion_tokens: 120,
        started: 1.5,
        ended: 4,
        error: '',
        confidence: 12.5
      },
      { index: 1, prompt: 'cot', status: 'no_answer', answer: null, steps: [], completion_tokens: 80 },
      { index: 2, prompt: 'tir', status: 'answered', answer: '100000', answer_outside: 'outside 0:99999' }
    ],
    vote: {
      answer: '42',
      tally: [{ answer: '42', count: 1, branches: [0], weight: 1 }],
      agreement: 1,
      tie: false,
      decided_early: true
    },
    status: 'done',
    error: '',
    created: '2025-01-01T00:00:00Z',
    elapsed: 12.25,
    schema_version: 1
  };
}

test('a well-formed record reads into its answer, engine, tally and settings', () => {
  const session = readSession(record());
  assert.equal(session.unsupported, null);
  assert.equal(session.problem, 'What is 6 * 7?');
  assert.equal(session.status, 'done');
  assert.equal(session.answer, '42');
  assert.equal(session.engineKind, 'llamacpp');
  assert.equal(session.engineModel, 'qwq-32b');
  assert.equal(session.engineLogprobs, true);
  assert.equal(session.elapsed, 12.25);
  assert.deepEqual(session.config, { temperature: 0.6, top_p: 0.95, seed: 3 });
  assert.deepEqual(session.tally, [{ answer: '42', count: 1, branches: [0], weight: 1 }]);
  assert.equal(session.agreement, 1);
  assert.equal(session.tie, false);
  assert.equal(session.decidedEarly, true);
});

test('branches read with their steps, outputs, tokens, time and confidence', () => {
  const [first, second] = readSession(record()).branches;
  assert.equal(first.index, 0);
  assert.equal(first.prompt, 'tir');
  assert.equal(first.status, 'answered');
  assert.equal(first.answer, '42');
  assert.equal(first.answerSource, 'boxed');
  assert.equal(first.answerOutside, '');
  assert.equal(first.completionTokens, 120);
  assert.equal(first.elapsed, 2.5);
  assert.equal(first.confidence, 12.5);
  assert.deepEqual(
    first.steps.map(s => s.kind),
    ['text', 'code']
  );
  assert.equal(first.steps[0].reasoning, 'easy');
  assert.equal(first.steps[1].code, 'print(6 * 7)');
  assert.equal(first.steps[1].execution, 'ok');
  assert.deepEqual(first.steps[1].outputs, [{ output_type: 'stream', name: 'stdout', text: ['4', '2\n'] }]);
  assert.equal(second.answer, null);
  assert.equal(second.status, 'no_answer');
  assert.equal(second.confidence, null);
  assert.deepEqual(second.steps, []);
});

test('an answer outside the answer constraint reads with why it does not vote', () => {
  const outside = readSession(record()).branches[2];
  assert.equal(outside.answer, '100000');
  assert.equal(outside.answerOutside, 'outside 0:99999');
});

test('confidences decode from base64 little-endian uint16 hundredths', () => {
  assert.deepEqual(decodeConfidence('6AM='), [10]); // bytes E8 03
  // jupyter_qwq/confidence.py's Trace([10, 2.5, 655.35, 0.01]).encoded()
  assert.deepEqual(decodeConfidence('6AP6AP//AQA='), [10, 2.5, 655.35, 0.01]);
  assert.deepEqual(readSession(record()).branches[0].steps[0].confidence, [10, 2.5, 655.35, 0.01]);
  assert.deepEqual(decodeConfidence('6AMB'), [10]); // an odd last byte is dropped
});

test('a confidence that is not base64 reads as no values', () => {
  for (const value of ['not base64!', HTML, 'A', '6AM===', '', null, undefined, 42, { a: 1 }, [['6AM=']]]) {
    assert.deepEqual(decodeConfidence(value), [], String(value));
  }
});

test('something that is not a record reads as an empty, unsupported session without throwing', () => {
  for (const value of [null, undefined, 42, 'a string', [], [record()], true, NaN]) {
    const session = readSession(value);
    assert.equal(session.problem, '');
    assert.equal(session.status, 'running');
    assert.equal(session.answer, null);
    assert.deepEqual(session.branches, []);
    assert.deepEqual(session.tally, []);
    assert.equal(session.unsupported, `This record has no schema version; ${UPGRADE}`);
  }
});

test('strings where numbers belong and numbers where strings belong read as safe defaults', () => {
  const session = readSession({
    schema_version: 1,
    problem: 7,
    elapsed: '12',
    engine: { kind: ['llama', 'cpp'], model: null, logprobs: 'yes' },
    vote: { answer: 42, agreement: '1', tie: 'true', decided_early: 1, tally: [{ answer: 5, count: '3', branches: [1, '2', null, 3] }] },
    branches: [{ index: '9', completion_tokens: '100', started: '1', ended: '5', confidence: '9', status: 3 }]
  });
  assert.equal(session.problem, '7');
  assert.equal(session.elapsed, 0);
  assert.equal(session.engineKind, 'llamacpp');
  assert.equal(session.engineModel, '');
  assert.equal(session.engineLogprobs, null);
  assert.equal(session.answer, '42');
  assert.equal(session.agreement, 0);
  assert.equal(session.tie, false);
  assert.equal(session.decidedEarly, false);
  assert.deepEqual(session.tally, [{ answer: '5', count: 0, branches: [1, 3], weight: null }]);
  const [branch] = session.branches;
  assert.equal(branch.index, 0);
  assert.equal(branch.completionTokens, 0);
  assert.equal(branch.elapsed, 0);
  assert.equal(branch.confidence, null);
  assert.equal(branch.status, '3');
});

test('nested garbage reads as empty parts, never as a throw', () => {
  let deep: unknown = 'bottom';
  for (let i = 0; i < 10000; i++) {
    deep = [deep, { deep }];
  }
  const session = readSession({
    schema_version: 1,
    problem: { text: 'not a string' },
    config: ['temperature', 0.6],
    engine: 'llamacpp',
    vote: [{ answer: '42' }],
    branches: [null, 5, 'branch', deep, { steps: 'none' }, { steps: [null, { text: deep, outputs: [1, null, { output_type: 5 }] }] }]
  });
  assert.equal(session.problem, '');
  assert.deepEqual(session.config, {});
  assert.equal(session.engineKind, '');
  assert.equal(session.answer, null);
  assert.deepEqual(session.tally, []);
  assert.deepEqual(
    session.branches.map(b => [b.index, b.status, b.steps.length]),
    [
      [0, 'pending', 0],
      [1, 'pending', 0],
      [2, 'pending', 0],
      [3, 'pending', 0],
      [4, 'pending', 0],
      [5, 'pending', 2]
    ]
  );
  const [empty, step] = session.branches[5].steps;
  assert.equal(empty.kind, '');
  assert.equal(step.text, '');
  assert.deepEqual(step.outputs, [{ output_type: '5' }]);
});

test('HTML in record text stays the same plain text', () => {
  const raw = record();
  raw.problem = HTML;
  raw.error = HTML;
  (raw.branches as Record<string, unknown>[])[0].prompt = HTML;
  (raw.vote as Record<string, unknown>).answer = HTML;
  const session = readSession(raw);
  assert.equal(session.problem, HTML);
  assert.equal(session.error, HTML);
  assert.equal(session.answer, HTML);
  assert.equal(session.branches[0].prompt, HTML);
});

test('schema version 1 is read, as jupyter_qwq writes it', () => {
  assert.equal(SCHEMA_VERSION, 1);
  assert.equal(unsupportedReason(record()), null);
  assert.equal(readSession({ schema_version: 1 }).unsupported, null);
});

test('another, missing or mistyped schema version is reported with how to read it', () => {
  const reason = (version: unknown): string | null => readSession({ ...record(), schema_version: version }).unsupported;
  assert.equal(reason(2), `This record has schema version 2; ${UPGRADE}`);
  assert.equal(reason('1'), `This record has schema version "1"; ${UPGRADE}`);
  assert.equal(reason(null), `This record has schema version null; ${UPGRADE}`);
  assert.equal(reason(0.5), `This record has schema version 0.5; ${UPGRADE}`);
  const missing = record();
  delete missing.schema_version;
  assert.equal(readSession(missing).unsupported, `This record has no schema version; ${UPGRADE}`);
});

test('a hostile schema version is named briefly', () => {
  const message = unsupportedReason({ schema_version: HTML.repeat(100) });
  assert.ok(message !== null);
  assert.ok(message.startsWith(`This record has schema version ${JSON.stringify(HTML).slice(0, 40)}…; `), message);
  assert.ok(message.endsWith(UPGRADE));
});

test('sparkline draws a rising sequence from the lowest to the highest bar', () => {
  assert.equal(sparkline([1, 2, 3, 4, 5, 6, 7, 8]), '▁▂▃▄▅▆▇█');
  const long = sparkline(Array.from({ length: 100 }, (_, i) => i));
  assert.equal(long.length, 16);
  assert.ok(long.startsWith('▁') && long.endsWith('█'), long);
  assert.equal(sparkline([3, 3, 3]), '▁▁▁');
  assert.equal(sparkline([]), '');
});

test('stripAnsi removes colour codes and terminal hyperlinks, keeping the text', () => {
  assert.equal(stripAnsi('\x1b[31mZeroDivisionError\x1b[0m: \x1b[1;32mdivision\x1b[0m by zero'), 'ZeroDivisionError: division by zero');
  assert.equal(stripAnsi('see \x1b]8;;https://example.com\x07the docs\x1b]8;;\x07.'), 'see the docs.');
  assert.equal(stripAnsi('plain [31m text'), 'plain [31m text');
});

test('imageDataUri accepts plain base64 only', () => {
  assert.equal(imageDataUri('image/png', 'iVBORw0K\nGgo=\n'), 'data:image/png;base64,iVBORw0KGgo=');
  assert.equal(imageDataUri('image/png', ['iVBOR', 'w0KGgo=']), 'data:image/png;base64,iVBORw0KGgo=');
  for (const payload of ['javascript:alert(1)', 'iVBOR"><script>', 'abc)onerror=x', '', null, { data: 'iVBOR' }]) {
    assert.equal(imageDataUri('image/png', payload), null, String(payload));
  }
});
