/**
 * The Session record as the explorer reads it (see jupyter_qwq/session.py, `Session.to_dict()`).
 *
 * The record is untrusted: it holds model output and what the model's code printed. Every field
 * is read through the accessors below, which tolerate missing or mistyped values, and nothing
 * from it is ever parsed as HTML.
 */

/** The record schema this extension reads: jupyter_qwq/session.py writes and checks the same. */
export const SCHEMA_VERSION = 1;

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface ITallyItem {
  answer: string;
  count: number;
  branches: number[];
  /** What the group weighed in the vote (count, score sum or best score); null in older records. */
  weight: number | null;
}

/** The score of one part of a branch's solution: `text.slice(start, end)` of step `step`. */
export interface IStepScore {
  step: number;
  start: number;
  end: number;
  score: number;
}

export interface IOutput {
  output_type: string;
  [key: string]: Json;
}

export interface IStep {
  kind: string;
  text: string;
  reasoning: string;
  code: string;
  outputs: IOutput[];
  execution: string;
  /** For code: exactly what was sent back to the model (a PRM scores it). */
  feedback: string;
  duration: number;
  confidence: number[];
}

export interface IMessage {
  role: string;
  content: string;
}

export interface IBranch {
  index: number;
  prompt: string;
  /** The exact messages the branch was started with (system, then user); empty in older records. */
  messages: IMessage[];
  /** The sampling the branch was run with, seed included. */
  sampling: JsonObject;
  protocol: string;
  status: string;
  answer: string | null;
  answerSource: string;
  answerOutside: string; // why the answer breaks --answer-type/--answer-range; then it does not vote
  steps: IStep[];
  /** Why it ended: answered | no-answer | cut-low-confidence | stopped-decided | budget | ... */
  stopReason: string;
  /** Its weight in the vote (--score); null: not scored. */
  score: number | null;
  /** prm / critic: the score of each step of its solution. */
  stepScores: IStepScore[];
  completionTokens: number;
  elapsed: number;
  error: string;
  /** What happened to it, in words: a cut, a PRM context cut, the critic's verdict and cost. */
  notes: string[];
  confidence: number | null;
}

export interface ISession {
  problem: string;
  status: string;
  error: string;
  answer: string | null;
  engineKind: string;
  engineModel: string;
  engineLogprobs: boolean | null;
  elapsed: number;
  config: JsonObject;
  branches: IBranch[];
  tally: ITallyItem[];
  agreement: number;
  tie: boolean;
  decidedEarly: boolean;
  /** majority | weighted | best (--vote). */
  method: string;
  /** The leader's share of the vote's weight. */
  share: number;
  /** Answered branches outside --keep-top: they did not vote. */
  dropped: number[];
  /** --stop confidence: the cut threshold the warm-up set. */
  threshold: number | null;
  /** finished | decided | token-budget | time-limit | error | cancelled; '' in older records. */
  endedBy: string;
  /** Why the record cannot be shown (another schema version), or null. */
  unsupported: string | null;
}

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function obj(value: unknown): JsonObject {
  return isObject(value) ? value : {};
}

function list(value: unknown): Json[] {
  return Array.isArray(value) ? value : [];
}

export function str(value: unknown): string {
  if (typeof value === 'string') {
    return value;
  }
  if (Array.isArray(value)) {
    // nbformat multiline strings
    return value.map(v => (typeof v === 'string' ? v : '')).join('');
  }
  if (typeof value === 'number' || typeof value === 'boolean') {
    return String(value);
  }
  return '';
}

function num(value: unknown): number {
  return typeof value === 'number' && isFinite(value) ? value : 0;
}

function optionalNum(value: unknown): number | null {
  return typeof value === 'number' && isFinite(value) ? value : null;
}

function indices(value: unknown): number[] {
  return list(value).filter((i): i is number => typeof i === 'number');
}

function optionalStr(value: unknown): string | null {
  return value === null || value === undefined ? null : str(value);
}

function readStep(raw: unknown): IStep {
  const s = obj(raw);
  return {
    kind: str(s.kind),
    text: str(s.text),
    reasoning: str(s.reasoning),
    code: str(s.code),
    outputs: list(s.outputs)
      .filter(isObject)
      .map(o => ({ ...o, output_type: str(o.output_type) })),
    execution: str(s.execution),
    feedback: str(s.feedback),
    duration: num(s.duration),
    confidence: decodeConfidence(s.confidence)
  };
}

function readBranch(raw: unknown, position: number): IBranch {
  const b = obj(raw);
  const started = num(b.started);
  const ended = num(b.ended);
  return {
    index: typeof b.index === 'number' ? b.index : position,
    prompt: str(b.prompt),
    messages: list(b.messages)
      .filter(isObject)
      .map(m => ({ role: str(m.role), content: str(m.content) })),
    sampling: b.seed === null || b.seed === undefined ? obj(b.sampling) : { ...obj(b.sampling), seed: b.seed },
    protocol: str(b.protocol),
    status: str(b.status) || 'pending',
    answer: optionalStr(b.answer),
    answerSource: str(b.answer_source),
    answerOutside: str(b.answer_outside),
    steps: list(b.steps).map(readStep),
    stopReason: str(b.stop_reason),
    score: optionalNum(b.score),
    stepScores: list(b.step_scores)
      .filter(isObject)
      .map(x => ({ step: num(x.step), start: num(x.start), end: num(x.end), score: num(x.score) })),
    completionTokens: num(b.completion_tokens),
    elapsed: ended ? Math.max(0, ended - started) : 0,
    error: str(b.error),
    notes: list(b.notes).map(str),
    confidence: typeof b.confidence === 'number' && isFinite(b.confidence) ? b.confidence : null
  };
}

function readTally(raw: unknown): ITallyItem {
  const t = obj(raw);
  return {
    answer: str(t.answer),
    count: num(t.count),
    branches: indices(t.branches),
    weight: optionalNum(t.weight)
  };
}

/** The version as the message names it: hostile values are cut short, missing ones say so. */
function describeVersion(version: unknown): string {
  if (version === undefined) {
    return 'no schema version';
  }
  let shown: string;
  try {
    shown = JSON.stringify(version) ?? String(version);
  } catch {
    shown = String(version);
  }
  return `schema version ${shown.length > 40 ? shown.slice(0, 40) + '…' : shown}`;
}

/**
 * Null when this extension reads the record's schema version, else the message to show instead of
 * the record: a record of another version may mean something else by the same fields.
 */
export function unsupportedReason(raw: unknown): string | null {
  const version = obj(raw).schema_version;
  if (version === SCHEMA_VERSION) {
    return null;
  }
  return (
    `This record has ${describeVersion(version)}; this JupyterLab extension reads version ` +
    `${SCHEMA_VERSION}. Upgrade jupyter_qwq (pip install -U jupyter_qwq) to read it.`
  );
}

export function readSession(raw: unknown): ISession {
  const s = obj(raw);
  const engine = obj(s.engine);
  const vote = obj(s.vote);
  return {
    problem: str(s.problem),
    status: str(s.status) || 'running',
    error: str(s.error),
    answer: optionalStr(vote.answer),
    engineKind: str(engine.kind),
    engineModel: str(engine.model),
    engineLogprobs: typeof engine.logprobs === 'boolean' ? engine.logprobs : null,
    elapsed: num(s.elapsed),
    config: obj(s.config),
    branches: list(s.branches).map(readBranch),
    tally: list(vote.tally).map(readTally),
    agreement: num(vote.agreement),
    tie: vote.tie === true,
    decidedEarly: vote.decided_early === true,
    method: str(vote.method) || 'majority',
    share: num(vote.share),
    dropped: indices(vote.dropped),
    threshold: optionalNum(vote.threshold),
    endedBy: str(s.ended_by),
    unsupported: unsupportedReason(raw)
  };
}

// ANSI escape sequences, as in jupyter_qwq/render.py (plus OSC sequences such as hyperlinks).
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)/g;

export function stripAnsi(text: string): string {
  return text.replace(ANSI, '');
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** A data URI for a base64 image payload, or null when the payload is not plain base64. */
export function imageDataUri(mime: string, payload: unknown): string | null {
  const data = str(payload).replace(/\s/g, '');
  if (!data || !BASE64.test(data)) {
    return null;
  }
  return `data:${mime};base64,${data}`;
}

/**
 * A step's token confidences, as jupyter_qwq/confidence.py stores them: base64 of little-endian
 * uint16 hundredths. Anything else reads as no values.
 */
export function decodeConfidence(value: unknown): number[] {
  const data = str(value);
  if (!data || !BASE64.test(data)) {
    return [];
  }
  let bytes: string;
  try {
    bytes = atob(data);
  } catch {
    return [];
  }
  const values: number[] = [];
  for (let i = 0; i + 1 < bytes.length; i += 2) {
    values.push((bytes.charCodeAt(i) | (bytes.charCodeAt(i + 1) << 8)) / 100);
  }
  return values;
}

const SPARK = '▁▂▃▄▅▆▇█';

/** The values in `width` block characters, each the mean of its stretch (as confidence.py). */
export function sparkline(values: number[], width = 16): string {
  if (!values.length) {
    return '';
  }
  const n = Math.min(width, values.length);
  const means: number[] = [];
  for (let i = 0; i < n; i++) {
    const part = values.slice(Math.floor((values.length * i) / n), Math.floor((values.length * (i + 1)) / n));
    if (part.length) {
      means.push(part.reduce((a, b) => a + b, 0) / part.length);
    }
  }
  const low = Math.min(...means);
  const span = Math.max(...means) - low || 1;
  return means.map(m => SPARK[Math.min(SPARK.length - 1, Math.floor(((m - low) / span) * SPARK.length))]).join('');
}

export const CONFIDENCE_HELP =
  "Token confidence: minus the mean log-probability of the model's top candidates at each token, " +
  'averaged over the branch (higher: surer). The bars trace it from start to end.';

/** What a prompt variant's name says ("tir+hint2"), one line per part, as jupyter_qwq/prompts.py names them. */
export function promptHelp(name: string): string {
  const parts = name.split('+').map(part => {
    if (part === 'tir') {
      return 'tir: tool-integrated reasoning, the model may write Python that is run and its output read back';
    }
    if (part === 'cot') {
      return 'cot: chain of thought, reasoning in text only, no code is run';
    }
    const hint = /^hint(\d+)$/.exec(part);
    if (hint) {
      return `hint${hint[1]}: the problem was given with hint number ${hint[1]} added, so branches start differently`;
    }
    return part;
  });
  return parts.join('\n');
}

export const FALLBACK_HELP =
  'fallback: the branch gave no \\boxed{} answer; this one was extracted from its last lines, ' +
  'is shown but does not vote';

export function seconds(value: number): string {
  return value < 10 ? `${value.toFixed(2)} s` : `${value.toFixed(1)} s`;
}
