/**
 * jupyter-qwq: a JupyterLab mime renderer ("branch explorer") for jupyter_qwq Session records.
 *
 * It draws `application/vnd.jupyter-qwq.session+json`: the answer, the vote tally (click an
 * answer to keep only the branches that gave it), and every branch with its thinking, text, code
 * and the code's outputs. The model's text is rendered as a markdown cell is (markdown, math, code
 * highlighting) with JupyterLab's own parser, sanitizer and typesetter; its raw HTML is escaped.
 * It runs no code, so it is registered as safe and renders in untrusted notebooks too.
 */

import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { renderExplorer } from './explorer';
import { IProse, jupyterProse } from './markdown';
import { readSession } from './record';

export const MIME_TYPE = 'application/vnd.jupyter-qwq.session+json';

/** Lower ranks win; JupyterLab's own text/html renderer has rank 50, its mime extensions 100. */
export const RANK = 0;

export class ExplorerWidget extends Widget implements IRenderMime.IRenderer {
  constructor(options: IRenderMime.IRendererOptions) {
    super();
    this._mimeType = options.mimeType;
    this._prose = jupyterProse(options);
    this.addClass('jp-QwqExplorer');
  }

  renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    renderExplorer(this.node, readSession(model.data[this._mimeType]), this._prose);
    return Promise.resolve();
  }

  private _mimeType: string;
  private _prose: IProse;
}

export const rendererFactory: IRenderMime.IRendererFactory = {
  safe: true,
  mimeTypes: [MIME_TYPE],
  defaultRank: RANK,
  createRenderer: options => new ExplorerWidget(options)
};

const extension: IRenderMime.IExtension = {
  id: 'jupyter-qwq:explorer',
  description: 'Branch explorer for jupyter_qwq solve sessions.',
  rendererFactory,
  rank: RANK,
  dataType: 'json'
};

export default extension;
