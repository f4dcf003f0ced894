/**
 * The branch explorer's DOM, built from a Session record with createElement and textContent;
 * the model's prose and code go through `IProse` (markdown.ts: JupyterLab's markdown parser,
 * sanitizer and MathJax). The record is model output and is never run.
 */

import {
  Span,
  codeRewardSpans,
  droppedText,
  fixed,
  rewardColour,
  rewardSpans,
  scoreText,
  stepRewardTitle,
  stopText,
  voteNotes,
  weightText,
  withoutRunCode
} from './facts';
import { IProse, plainProse } from './markdown';
import {
  CONFIDENCE_HELP,
  FALLBACK_HELP,
  IBranch,
  IOutput,
  ISession,
  IStep,
  ITallyItem,
  imageDataUri,
  isObject,
  promptHelp,
  seconds,
  sparkline,
  str,
  stripAnsi
} from './record';

const PREFIX = 'jp-QwqExplorer';
const IMAGE_TYPES = ['image/png', 'image/jpeg'];
const SAMPLING = ['temperature', 'top_p', 'min_p', 'top_k', 'seed'];

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function cls(name: string): string {
  return `${PREFIX}-${name}`;
}

/** A status word as a small badge; the class name is derived from a fixed list only. */
function statusBadge(status: string): HTMLElement {
  const known = [
    'pending',
    'running',
    'executing',
    'answered',
    'no_answer',
    'stopped',
    'failed',
    'done',
    'timed_out',
    'cancelled'
  ];
  const badge = el('span', `${cls('status')} ${cls('status')}-${known.includes(status) ? status : 'other'}`);
  badge.textContent = status.replace(/_/g, ' ');
  return badge;
}

function answerCode(answer: string): HTMLElement {
  return el('code', cls('answerValue'), answer);
}

function metaItem(label: string, value: string): HTMLElement {
  const item = el('span', cls('metaItem'));
  item.appendChild(el('span', cls('metaLabel'), label));
  item.appendChild(document.createTextNode(' '));
  item.appendChild(el('span', cls('metaValue'), value));
  return item;
}

/** Draw the model's text with `prose`; if that fails, the text is shown as it is. */
function drawProse(host: HTMLElement, draw: Promise<void>, source: string): void {
  draw.catch(() => {
    host.textContent = source;
  });
}

function copyButton(answer: string): HTMLButtonElement {
  const button = el('button', `${cls('copy')} jp-mod-styled`, 'Copy');
  button.type = 'button';
  button.title = 'Copy the answer to the clipboard';
  button.addEventListener('click', () => {
    navigator.clipboard.writeText(answer).then(
      () => {
        button.textContent = 'Copied';
      },
      () => {
        button.textContent = 'Copy failed: select the answer instead';
      }
    );
  });
  return button;
}

function header(session: ISession, prose: IProse): HTMLElement {
  const node = el('div', cls('header'));

  const title = el('div', cls('title'));
  title.appendChild(el('span', cls('brand'), 'jupyter_qwq'));
  title.appendChild(statusBadge(session.status));
  node.appendChild(title);

  if (session.problem) {
    const problem = node.appendChild(el('div', cls('problem')));
    drawProse(problem, prose.text(problem, session.problem), session.problem);
  }

  const answer = el('div', cls('answer'));
  answer.appendChild(el('span', cls('answerLabel'), 'Answer'));
  if (session.answer !== null) {
    answer.appendChild(answerCode(session.answer));
    answer.appendChild(copyButton(session.answer));
  } else {
    answer.appendChild(el('span', cls('noAnswer'), 'no answer'));
  }
  node.appendChild(answer);

  if (session.error) {
    node.appendChild(el('pre', cls('error'), session.error));
  }

  const totalTokens = session.branches.reduce((sum, b) => sum + b.completionTokens, 0);
  const meta = el('div', cls('meta'));
  const engine = [session.engineKind, session.engineModel].filter(Boolean).join(' · ');
  meta.appendChild(metaItem('engine', engine || 'unknown'));
  meta.appendChild(metaItem('elapsed', seconds(session.elapsed)));
  meta.appendChild(metaItem('tokens', String(totalTokens)));
  meta.appendChild(metaItem('branches', String(session.branches.length)));
  if (session.engineLogprobs === false) {
    meta.appendChild(metaItem('confidence', 'none: this engine sent no log-probabilities'));
  }
  node.appendChild(meta);

  const sampling = el('div', cls('meta'));
  for (const name of SAMPLING) {
    if (name in session.config) {
      sampling.appendChild(metaItem(name, str(session.config[name])));
    }
  }
  if (sampling.childNodes.length) {
    node.appendChild(sampling);
  }
  return node;
}

function output(out: IOutput): HTMLElement | null {
  const kind = out.output_type;
  if (kind === 'stream') {
    const stderr = out.name === 'stderr';
    return el('pre', `${cls('output')} ${cls('stream')}${stderr ? ' ' + cls('stderr') : ''}`, stripAnsi(str(out.text)));
  }
  if (kind === 'error') {
    const trace = Array.isArray(out.traceback) ? out.traceback.map(str).join('\n') : '';
    const body = stripAnsi(trace) || `${str(out.ename)}: ${str(out.evalue)}`;
    return el('pre', `${cls('output')} ${cls('error')}`, body);
  }
  const data = isObject(out.data) ? out.data : {};
  for (const mime of IMAGE_TYPES) {
    if (mime in data) {
      const uri = imageDataUri(mime, data[mime]);
      if (uri) {
        const img = el('img', cls('image'));
        img.alt = 'plot';
        img.src = uri;
        return img;
      }
    }
  }
  if ('text/plain' in data) {
    return el('pre', `${cls('output')} ${cls('result')}`, stripAnsi(str(data['text/plain'])));
  }
  return null;
}

/** Where a step sits in its branch, so its scored parts can be coloured by their reward. */
interface IRewards {
  branch: IBranch;
  session: ISession;
  step: number;
}

/** `content` inside a bar coloured by the step's reward, with its figure as a badge (not colour alone). */
function rewarded(rewards: IRewards, span: Span, content: HTMLElement): HTMLElement {
  const [, , number, score] = span;
  const node = el('div', cls('reward'));
  node.dataset.step = String(number);
  node.style.borderLeftColor = rewardColour(score);
  const badge = node.appendChild(el('span', cls('rewardBadge'), fixed(score, 2)));
  badge.style.borderColor = rewardColour(score);
  badge.title = stepRewardTitle(number, score, rewards.session);
  badge.setAttribute('aria-label', badge.title);
  node.appendChild(content);
  return node;
}

function proseBlock(text: string, prose: IProse): HTMLElement {
  const body = el('div', cls('text'));
  drawProse(body, prose.text(body, text), text);
  return body;
}

function textStep(step: IStep, text: string, prose: IProse, rewards: IRewards): HTMLElement {
  const node = el('div', `${cls('step')} ${cls('textStep')}`);
  if (step.reasoning) {
    const thinking = el('details', cls('thinking'));
    thinking.appendChild(el('summary', undefined, 'thinking'));
    const body = thinking.appendChild(el('div', cls('thinkingText')));
    drawProse(body, prose.text(body, step.reasoning), step.reasoning);
    node.appendChild(thinking);
  }
  const spans = rewardSpans(rewards.branch, rewards.step, text.length);
  let done = 0;
  for (const span of spans) {
    if (text.slice(done, span[0]).trim()) {
      node.appendChild(proseBlock(text.slice(done, span[0]), prose));
    }
    node.appendChild(rewarded(rewards, span, proseBlock(text.slice(span[0], span[1]), prose)));
    done = Math.max(done, span[1]);
  }
  if (text.slice(done).trim()) {
    node.appendChild(proseBlock(text.slice(done), prose));
  }
  return node;
}

function codeStep(step: IStep, prose: IProse, rewards: IRewards): HTMLElement {
  const node = el('div', `${cls('step')} ${cls('codeStep')}`);
  const label = el('div', cls('codeLabel'));
  label.appendChild(el('span', undefined, 'code'));
  if (step.execution) {
    label.appendChild(
      el('span', `${cls('execution')} ${cls('execution')}-${step.execution === 'ok' ? 'ok' : 'bad'}`, step.execution)
    );
  }
  label.appendChild(el('span', undefined, seconds(step.duration)));
  node.appendChild(label);
  const code = el('div', cls('code'));
  drawProse(code, prose.code(code, step.code, 'python'), step.code);
  const [written] = codeRewardSpans(rewards.branch, rewards.step); // the block the text before ended with
  node.appendChild(written ? rewarded(rewards, written, code) : code);
  const outputs = el('div', cls('outputs'));
  for (const out of step.outputs) {
    const rendered = output(out);
    if (rendered) {
      outputs.appendChild(rendered);
    }
  }
  const [read] = rewardSpans(rewards.branch, rewards.step, step.feedback.length); // its output as the model read it
  if (outputs.childNodes.length || read) {
    node.appendChild(read ? rewarded(rewards, read, outputs) : outputs);
  }
  return node;
}

/** The exact messages and sampling the branch started with, folded away. */
function promptView(branch: IBranch): HTMLElement {
  const node = el('details', cls('promptDetails'));
  node.appendChild(el('summary', undefined, 'prompt and sampling'));
  const sampling = el('div', cls('meta'));
  for (const [name, value] of Object.entries(branch.sampling)) {
    sampling.appendChild(metaItem(name, str(value)));
  }
  if (branch.protocol) {
    const item = sampling.appendChild(metaItem('code output', branch.protocol));
    item.title =
      branch.protocol === 'continue'
        ? "continue: a code block's output was appended to the model's own turn, which it continued"
        : "chat: a code block's output went back as a new user message";
  }
  node.appendChild(sampling);
  if (!branch.messages.length) {
    node.appendChild(el('div', cls('empty'), 'This record does not hold the prompt text.'));
  }
  for (const message of branch.messages) {
    node.appendChild(el('div', cls('metaLabel'), message.role));
    node.appendChild(el('pre', cls('message'), message.content));
  }
  return node;
}

function branchView(branch: IBranch, session: ISession, prose: IProse): HTMLDetailsElement {
  const node = el('details', cls('branch'));
  node.dataset.branch = String(branch.index);

  const summary = el('summary', cls('branchSummary'));
  summary.appendChild(el('span', cls('branchName'), `Branch ${branch.index}`));
  summary.appendChild(statusBadge(branch.status));
  const prompt = summary.appendChild(el('span', cls('prompt'), branch.prompt));
  prompt.title = promptHelp(branch.prompt);
  const answer = el('span', cls('branchAnswer'));
  if (branch.answer !== null) {
    answer.appendChild(answerCode(branch.answer));
    if (branch.answerSource.startsWith('fallback')) {
      const marker = el('span', cls('fallback'), 'fallback');
      marker.title = `${FALLBACK_HELP} (rule: ${branch.answerSource})`;
      answer.appendChild(marker);
    }
    if (branch.answerOutside) {
      const marker = el('span', cls('fallback'), branch.answerOutside);
      marker.title = 'Does not vote: outside --answer-type/--answer-range';
      answer.appendChild(marker);
    }
  } else {
    answer.appendChild(el('span', cls('noAnswer'), 'no answer'));
  }
  summary.appendChild(answer);
  const why = [stopText(branch, session), droppedText(branch, session)].filter(Boolean).join('; ');
  if (why) {
    summary.appendChild(el('span', cls('why'), why));
  }
  const score = scoreText(branch, session);
  if (score) {
    summary.appendChild(el('span', `${cls('branchStat')} ${cls('score')}`, score));
  }
  summary.appendChild(el('span', cls('branchStat'), `${branch.completionTokens} tokens`));
  summary.appendChild(el('span', cls('branchStat'), seconds(branch.elapsed)));
  if (branch.confidence !== null) {
    const trace = branch.steps.filter(s => s.kind === 'text').flatMap(s => s.confidence);
    const shown = el('span', `${cls('branchStat')} ${cls('confidence')}`);
    shown.textContent = `confidence ${branch.confidence.toFixed(1)} ${sparkline(trace)}`.trim();
    shown.title = CONFIDENCE_HELP;
    summary.appendChild(shown);
  }
  node.appendChild(summary);

  // The body is built on first open: a record of many branches with images stays cheap to show.
  let built = false;
  const build = (): void => {
    if (built) {
      return;
    }
    built = true;
    const body = el('div', cls('branchBody'));
    if (branch.error) {
      body.appendChild(el('pre', cls('error'), branch.error));
    }
    for (const note of branch.notes) {
      body.appendChild(el('div', cls('note'), note));
    }
    body.appendChild(promptView(branch));
    branch.steps.forEach((step, i) => {
      const rewards = { branch, session, step: i };
      body.appendChild(
        step.kind === 'code'
          ? codeStep(step, prose, rewards)
          : textStep(step, withoutRunCode(step.text, branch.steps[i + 1]), prose, rewards)
      );
    });
    if (!branch.steps.length && !branch.error) {
      body.appendChild(el('div', cls('empty'), 'Nothing written yet.'));
    }
    node.appendChild(body);
  };
  node.addEventListener('toggle', () => {
    if (node.open) {
      build();
    }
  });
  return node;
}

/**
 * Render the whole explorer into `host`, replacing what it held; the model's text is drawn by
 * `prose` (plain text unless JupyterLab's markdown machinery is given).
 */
export function renderExplorer(host: HTMLElement, session: ISession, prose: IProse = plainProse): void {
  host.textContent = '';
  if (session.unsupported !== null) {
    host.appendChild(el('div', cls('unsupported'), session.unsupported));
    return;
  }
  host.appendChild(header(session, prose));

  const branches = el('div', cls('branches'));
  const views = session.branches.map(branch => branchView(branch, session, prose));
  views.forEach(v => branches.appendChild(v));

  const tally = el('div', cls('tally'));
  const tallyTitle = el('div', cls('sectionTitle'));
  tallyTitle.appendChild(el('span', undefined, 'Votes'));
  tallyTitle.appendChild(el('span', cls('notes'), voteNotes(session).join(' · ')));
  tally.appendChild(tallyTitle);

  const filterBar = el('div', cls('filterBar'));
  const filterText = el('span', cls('filterText'));
  const showAll = el('button', `${cls('showAll')} jp-mod-styled`, 'Show all branches');
  showAll.type = 'button';
  filterBar.appendChild(filterText);
  filterBar.appendChild(showAll);
  filterBar.hidden = true;

  const rows: HTMLButtonElement[] = [];
  let active: ITallyItem | null = null;

  const applyFilter = (item: ITallyItem | null): void => {
    active = item;
    rows.forEach(row => {
      const pressed = item !== null && row.dataset.index === String(session.tally.indexOf(item));
      row.setAttribute('aria-pressed', pressed ? 'true' : 'false');
      row.classList.toggle('jp-mod-active', pressed);
    });
    let shown = 0;
    session.branches.forEach((branch, i) => {
      const visible = item === null || item.branches.includes(branch.index);
      views[i].hidden = !visible;
      shown += visible ? 1 : 0;
    });
    filterBar.hidden = item === null;
    filterText.textContent =
      item === null ? '' : `Showing ${shown} of ${session.branches.length} branches, those that answered `;
    if (item !== null) {
      filterText.appendChild(answerCode(item.answer));
    }
  };

  if (session.tally.length) {
    const weighed = session.tally.some(t => weightText(t, session));
    const size = (t: ITallyItem): number => (weighed ? t.weight ?? 0 : t.count);
    const most = Math.max(...session.tally.map(size), weighed ? 0 : 1) || 1;
    const list = el('div', weighed ? `${cls('tallyList')} ${cls('weighed')}` : cls('tallyList'));
    session.tally.forEach((item, i) => {
      const row = el('button', cls('tallyRow'));
      row.type = 'button';
      row.dataset.index = String(i);
      row.dataset.answer = item.answer;
      row.title = `Show only the branches that answered ${item.answer}`;
      row.setAttribute('aria-pressed', 'false');
      if (session.answer !== null && item.answer === session.answer && i === 0) {
        row.classList.add(cls('winner'));
      }
      const answerCell = el('span', cls('tallyAnswer'));
      answerCell.appendChild(answerCode(item.answer));
      row.appendChild(answerCell);
      const track = el('span', cls('barTrack'));
      const bar = el('span', cls('bar'));
      bar.style.width = `${(100 * size(item)) / most}%`;
      track.appendChild(bar);
      row.appendChild(track);
      row.appendChild(el('span', cls('count'), `${item.count} ${item.count === 1 ? 'vote' : 'votes'}`));
      if (weighed) {
        row.appendChild(el('span', cls('weight'), weightText(item, session)));
      }
      row.appendChild(el('span', cls('tallyBranches'), `branches ${item.branches.join(', ')}`));
      row.addEventListener('click', () => applyFilter(active === item ? null : item));
      rows.push(row);
      list.appendChild(row);
    });
    tally.appendChild(list);
  } else {
    tally.appendChild(el('div', cls('empty'), 'No branch gave an answer.'));
  }
  showAll.addEventListener('click', () => applyFilter(null));
  tally.appendChild(filterBar);
  host.appendChild(tally);

  const branchTitle = el('div', cls('sectionTitle'));
  branchTitle.appendChild(el('span', undefined, 'Branches'));
  host.appendChild(branchTitle);
  host.appendChild(branches);
}
