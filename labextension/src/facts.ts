/**
 * The decisions of a solve, worded as jupyter_qwq/views/facts.py words them: each branch's score
 * and why it stopped, each answer's weight, the vote's notes, each step's reward and colour.
 * test/facts_cases.json holds the cases both are tested on, so the explorer and the Python views
 * say the same.
 */

import { IBranch, ISession, IStep, ITallyItem, str } from './record';

/** A scored part of a step as the views draw it: [start, end, number (from 1), score]. */
export type Span = [number, number, number, number];

/** `value` with `digits` decimals (facts.py's `fixed` rounds the same way). */
export function fixed(value: number, digits: number): string {
  return value.toFixed(digits);
}

function percent(share: number): string {
  return `${fixed(100 * share, 0)}%`;
}

/** A config number as Python's `{:g}` writes it (for the short values settings hold). */
function plain(value: unknown): string {
  return typeof value === 'number' ? String(value) : value === undefined ? '?' : str(value);
}

function branchList(indices: number[]): string {
  return indices.length === 1 ? `branch ${indices[0]}` : `branches ${indices.join(', ')}`;
}

const WEIGHING: { [method: string]: string } = {
  weighted: "weighted vote: an answer weighs the sum of its branches' scores",
  best: 'best branch: the answer of the single best-scored branch wins'
};

const MEASURES: { [measure: string]: string } = {
  lowest_group: 'lowest group confidence',
  tail: 'tail confidence',
  bottom_10: 'bottom 10% confidence',
  mean: 'mean confidence'
};

const STOPS: { [reason: string]: string } = {
  'stopped-decided': 'stopped early: the vote was decided',
  budget: 'stopped: the token budget ran out',
  'time-limit': 'stopped: the time limit ran out',
  cancelled: 'cancelled',
  error: 'ended by an error'
};

/** What a branch's score measures under the solve's --score. */
export function scoreName(session: ISession): string {
  const kind = session.config.score;
  if (kind === 'confidence') {
    return MEASURES[str(session.config.confidence_measure)] ?? 'confidence';
  }
  if (kind === 'prm') {
    return `PRM ${session.config.prm_aggregate === undefined ? 'min' : str(session.config.prm_aggregate)}`;
  }
  return kind === 'critic' ? 'critic' : 'score';
}

function keepTop(session: ISession): string {
  const keep = session.config.keep_top;
  return typeof keep === 'number' ? `the top ${fixed(keep, 0)}% by score` : 'the top by score';
}

/** Why the solve ended, when it says more than "every branch ran to its end". */
export function endedByText(session: ISession): string {
  const config = session.config;
  const ended = session.endedBy || (session.decidedEarly ? 'decided' : '');
  if (ended === 'decided') {
    const rule = config.early_stop === false ? 'none' : config.stop === undefined ? 'lossless' : str(config.stop);
    if (rule.startsWith('agree:')) {
      return `ended early: ${rule.slice(6)} branches agreed (--stop ${rule}); the rest were stopped`;
    }
    if (rule === 'confidence') {
      const consensus = config.consensus === undefined ? '0.95' : plain(config.consensus);
      return (
        `ended early: the leading answer held ${percent(session.share)} of the weight ` +
        `(--consensus ${consensus}); the rest were stopped`
      );
    }
    return 'decided early: the remaining branches were stopped';
  }
  if (ended === 'token-budget') {
    return `ended by the token budget of ${plain(config.token_budget)} tokens; the answers so far voted`;
  }
  if (ended === 'time-limit') {
    return `ended by the time limit of ${plain(config.time_limit)} s; the answers so far voted`;
  }
  if (ended === 'cancelled') {
    return 'cancelled before every branch ended';
  }
  return ended === 'error' ? 'ended by an error' : '';
}

/** What to say about the vote besides its tally (as facts.py's vote_notes). */
export function voteNotes(session: ISession): string[] {
  const notes = [`agreement ${percent(session.agreement)}`];
  const weighing = WEIGHING[session.method];
  if (weighing) {
    notes.push(`${weighing} (${scoreName(session)})`);
  }
  if (session.dropped.length) {
    notes.push(`${branchList(session.dropped)} answered but did not vote: outside ${keepTop(session)} (--keep-top)`);
  }
  if (session.threshold !== null) {
    notes.push(`cut threshold ${fixed(session.threshold, 2)}, set by the warm-up branches`);
  }
  const ended = endedByText(session);
  if (ended) {
    notes.push(ended);
  }
  if (session.tie) {
    notes.push('tie, broken by the lowest branch index');
  }
  return notes;
}

/** "weight 1.62" beside a group's count when the vote is weighted; '' for a majority vote. */
export function weightText(item: ITallyItem, session: ISession): string {
  return session.method === 'majority' || item.weight === null ? '' : `weight ${fixed(item.weight, 2)}`;
}

/** The branch's score and what it measures; '' when the solve scores nothing. */
export function scoreText(branch: IBranch, session: ISession): string {
  const kind = session.config.score ?? 'none';
  if (branch.score === null) {
    return kind !== 'none' && branch.stopReason === 'answered' ? 'not scored' : '';
  }
  if (kind === 'critic') {
    const wrong = branch.stepScores.findIndex(s => s.score === 0);
    return wrong < 0 ? 'critic: no wrong step' : `critic: first wrong step ${wrong + 1}`;
  }
  return `${scoreName(session)} ${fixed(branch.score, 2)}`;
}

/** Why the branch stopped, in plain words, when its status does not already say it. */
export function stopText(branch: IBranch, session: ISession): string {
  if (branch.stopReason === 'cut-low-confidence') {
    const below = session.threshold === null ? '' : ` (its window fell below ${fixed(session.threshold, 2)})`;
    return `cut by low confidence at token ${branch.completionTokens}${below}`;
  }
  return STOPS[branch.stopReason] ?? '';
}

/** For a branch --keep-top dropped: why it did not vote. */
export function droppedText(branch: IBranch, session: ISession): string {
  return session.dropped.includes(branch.index) ? `did not vote: outside ${keepTop(session)} (--keep-top)` : '';
}

/** A step reward's colour, red (0) through amber to green (1), as facts.py's reward_colour. */
export function rewardColour(score: number): string {
  const hue = Math.floor(120 * Math.min(1, Math.max(0, score)) + 0.5);
  const rising = (h: number): number => Math.floor((35700 + 2210 * h + 500) / 1000);
  const [red, green] = hue <= 60 ? [168, rising(hue)] : [rising(120 - hue), 168];
  return `#${[red, green, 36].map(c => c.toString(16).padStart(2, '0')).join('')}`;
}

/** What a step's badge says on hover. */
export function stepRewardTitle(number: number, score: number, session: ISession): string {
  if (session.config.score === 'critic') {
    return `step ${number}: critic: ${score === 0 ? 'the first wrong step' : 'correct'}`;
  }
  return `step ${number}: PRM reward ${fixed(score, 2)} (probability it is right)`;
}

/** The scored parts of step `step`, cut to the first `shown` characters the view shows. */
export function rewardSpans(branch: IBranch, step: number, shown: number): Span[] {
  const spans: Span[] = [];
  branch.stepScores.forEach((s, i) => {
    const end = Math.min(s.end, shown);
    if (s.step === step && s.start < end) {
      spans.push([s.start, end, i + 1, s.score]);
    }
  });
  return spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
}

/** The scored parts of the text before code step `step` that the views show as that code. */
export function codeRewardSpans(branch: IBranch, step: number): Span[] {
  const code = branch.steps[step];
  const before = branch.steps[step - 1];
  if (step < 1 || !code || code.kind !== 'code' || before.kind !== 'text') {
    return [];
  }
  const shown = withoutRunCode(before.text, code).length;
  return rewardSpans(branch, step - 1, Number.MAX_SAFE_INTEGER).filter(span => span[0] >= shown);
}

/**
 * The model's text without the fenced block at its end when that block is exactly the code of the
 * next step: the code step right below shows it, with its outputs.
 */
export function withoutRunCode(text: string, next: IStep | undefined): string {
  if (!next || next.kind !== 'code' || !next.code.trim()) {
    return text;
  }
  const trimmed = text.trimEnd();
  if (!trimmed.endsWith('```')) {
    return text;
  }
  const open = trimmed.lastIndexOf('```', trimmed.length - 4);
  const newline = trimmed.indexOf('\n', open);
  if (open < 0 || newline < 0 || newline > trimmed.length - 3) {
    return text;
  }
  const fenced = trimmed.slice(newline + 1, trimmed.length - 3);
  return fenced.trim() === next.code.trim() ? trimmed.slice(0, open).trimEnd() : text;
}
