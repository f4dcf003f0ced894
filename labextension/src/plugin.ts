/**
 * `%%solve` cells edited as plain text: their body is a problem in words and math, which
 * JupyterLab's IPython mode (Python, with no cell-magic rule) would colour as Python keywords.
 *
 * JupyterLab sets every code cell's mimeType from the kernel's language; this plugin sets a cell
 * whose source starts with `%%solve` to text/plain, and back when it no longer does, following
 * edits, new cells and kernel changes. The mimeType is not saved in the notebook. It uses only the
 * application shell's signals and the notebook's public models (typed here by what it touches),
 * so the package needs no build dependency on @jupyterlab/notebook.
 */

export const SOLVE_MIME = 'text/plain';
const SETTLE_MS = [500, 2000, 6000];

interface ISignalLike<T, A = unknown> {
  connect(slot: (sender: T, args: A) => void): boolean;
}

interface ICellModelLike {
  readonly type: string;
  mimeType: string;
  readonly contentChanged: ISignalLike<ICellModelLike>;
  readonly mimeTypeChanged: ISignalLike<ICellModelLike>;
  readonly sharedModel: { getSource(): string };
}

interface ICellListLike extends Iterable<ICellModelLike> {
  readonly changed: ISignalLike<ICellListLike>;
}

interface INotebookLike {
  readonly model: { readonly cells: ICellListLike } | null;
  readonly codeMimetype: string;
  readonly modelChanged?: ISignalLike<INotebookLike>;
}

interface IWidgetLike {
  readonly content?: Partial<INotebookLike>;
  readonly context?: { ready: Promise<void> };
}

interface IAppLike {
  readonly restored: Promise<void>;
  readonly shell: {
    widgets(area?: string): Iterable<IWidgetLike>;
    readonly currentChanged?: ISignalLike<unknown>;
  };
}

/** Whether a cell's source is a `%%solve` cell (its first line, after blank lines). */
export function isSolveSource(source: string): boolean {
  return /^\s*%%solve\b/.test(source);
}

/** The mimeType a code cell should have, given its source and the notebook's code mimeType. */
export function cellMime(source: string, notebookMime: string): string {
  return isSolveSource(source) ? SOLVE_MIME : notebookMime;
}

function follow(notebook: INotebookLike, cell: ICellModelLike, seen: WeakSet<object>): void {
  if (cell.type !== 'code' || seen.has(cell)) {
    return;
  }
  seen.add(cell);
  const apply = (): void => {
    const wanted = cellMime(cell.sharedModel.getSource(), notebook.codeMimetype);
    if (cell.mimeType !== wanted && (wanted === SOLVE_MIME || cell.mimeType === SOLVE_MIME)) {
      cell.mimeType = wanted;
    }
  };
  cell.contentChanged.connect(apply);
  cell.mimeTypeChanged.connect(apply); // the notebook resets it when the kernel's language changes
  apply();
  // The editor loads a language asynchronously, and the last load to finish wins: Python's first
  // load can finish after text/plain was set. Setting it again once Python is loaded settles it.
  for (const delay of SETTLE_MS) {
    setTimeout(() => {
      if (cell.mimeType === SOLVE_MIME) {
        cell.mimeType = notebook.codeMimetype;
        cell.mimeType = SOLVE_MIME;
      }
    }, delay);
  }
}

function watch(notebook: INotebookLike, seen: WeakSet<object>): void {
  const model = notebook.model;
  if (!model || seen.has(model.cells)) {
    return;
  }
  seen.add(model.cells);
  const all = (): void => {
    for (const cell of model.cells) {
      follow(notebook, cell, seen);
    }
  };
  model.cells.changed.connect(all);
  all();
}

function isNotebook(content: Partial<INotebookLike> | undefined): content is INotebookLike {
  return !!content && 'codeMimetype' in content && 'model' in content;
}

const plugin = {
  id: 'jupyter-qwq:solve-cells',
  description: 'Edits %%solve cells as plain text, not Python.',
  autoStart: true,
  activate: (app: IAppLike): void => {
    const seen = new WeakSet<object>();
    const scan = (): void => {
      for (const widget of app.shell.widgets('main')) {
        const content = widget.content;
        if (isNotebook(content)) {
          void (widget.context?.ready ?? Promise.resolve()).then(() => watch(content, seen));
          content.modelChanged?.connect(() => watch(content, seen));
        }
      }
    };
    void app.restored.then(scan);
    app.shell.currentChanged?.connect(scan);
  }
};

export default plugin;
