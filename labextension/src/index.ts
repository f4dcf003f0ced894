/**
 * jupyter-qwq: a JupyterLab mime renderer ("branch explorer") for jupyter_qwq Session records.
 *
 * It draws `application/vnd.jupyter-qwq.session+json`: the answer, the vote tally (click an
 * answer to keep only the branches that gave it), and every branch with its thinking, text, code
 * and the code's outputs. It runs no code and never parses record content as HTML, so it is
 * registered as safe and renders in untrusted notebooks too.
 */

import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { renderExplorer } from './explorer';
import { readSession } from './record';

export const MIME_TYPE = 'application/vnd.jupyter-qwq.session+json';

/** Lower ranks win; JupyterLab's own text/html renderer has rank 50, its mime extensions 100. */
export const RANK = 0;

export class ExplorerWidget extends Widget implements IRenderMime.IRenderer {
  constructor(options: IRenderMime.IRendererOptions) {
    super();
    this._mimeType = options.mimeType;
    this.addClass('jp-QwqExplorer');
  }

  renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    renderExplorer(this.node, readSession(model.data[this._mimeType]));
    return Promise.resolve();
  }

  private _mimeType: string;
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
