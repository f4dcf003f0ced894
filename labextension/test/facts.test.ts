/**
 * The explorer words the decisions of a solve as the Python views do: every case of
 * facts_cases.json (tests/unit/test_decision_views.py checks the Python side on the same file).
 */

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import * as facts from '../src/facts';
import { IBranch, ISession, readSession } from '../src/record';

interface ICase {
  name: string;
  record: unknown;
  expect: unknown;
}

const CASES: ICase[] = JSON.parse(readFileSync(join(__dirname, '..', '..', 'test', 'facts_cases.json'), 'utf8')).cases;

function steps(branch: IBranch): unknown[] {
  return branch.steps.map((step, i) =>
    step.kind === 'code'
      ? [facts.rewardSpans(branch, i, step.feedback.length), facts.codeRewardSpans(branch, i)]
      : [facts.rewardSpans(branch, i, facts.withoutRunCode(step.text, branch.steps[i + 1]).length), []]
  );
}

function factsOf(session: ISession): unknown {
  return {
    voteNotes: facts.voteNotes(session),
    weights: session.tally.map(item => facts.weightText(item, session)),
    branches: session.branches.map(b => ({
      score: facts.scoreText(b, session),
      stop: facts.stopText(b, session),
      dropped: facts.droppedText(b, session),
      steps: steps(b),
      rewards: b.stepScores.map((s, i) => [facts.stepRewardTitle(i + 1, s.score, session), facts.rewardColour(s.score)])
    }))
  };
}

test('the cases cover weighted votes, drops, cuts, step rewards and the default policy', () => {
  assert.ok(CASES.length >= 5);
});

for (const c of CASES) {
  test(`the explorer says what the Python views say: ${c.name}`, () => {
    assert.deepEqual(factsOf(readSession(c.record)), c.expect);
  });
}
