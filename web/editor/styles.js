// The editor's stylesheet, added to the document once.

const STYLE_ID = "dragkit-editor-styles";

const CSS = `
.dragkit-editor { display: flex; flex-direction: column; gap: 4px; width: 100%; height: 100%; min-height: 260px;
  box-sizing: border-box; font: 12px sans-serif; color: var(--input-text, #ddd); outline: none; }
.dragkit-toolbar { display: flex; flex-direction: column; gap: 3px; }
.dragkit-row { display: flex; flex-wrap: wrap; gap: 3px; align-items: center; }
.dragkit-toolbar button, .dragkit-toolbar select { font: 11px sans-serif; padding: 2px 6px; border-radius: 4px; cursor: pointer;
  border: 1px solid var(--border-color, #555); background: var(--comfy-input-bg, #222); color: var(--input-text, #ddd); }
.dragkit-toolbar button:disabled, .dragkit-toolbar select:disabled { opacity: 0.45; cursor: default; }
.dragkit-toolbar button.dragkit-active { background: #2e7d32; border-color: #66bb6a; color: #fff; }
.dragkit-group { display: inline-flex; gap: 3px; align-items: center; }
.dragkit-group input[type=range] { width: 56px; }
.dragkit-size { min-width: 30px; font-size: 11px; }
.dragkit-stage { position: relative; flex: 1 1 auto; min-height: 160px; background: #161616; border-radius: 4px; overflow: hidden; }
.dragkit-editor:focus .dragkit-stage { box-shadow: inset 0 0 0 1px #9e9e9e; }
.dragkit-canvas { position: absolute; inset: 0; width: 100%; height: 100%; touch-action: none; cursor: crosshair; }
.dragkit-legend { display: flex; flex-wrap: wrap; gap: 8px; font-size: 11px; opacity: 0.85; }
.dragkit-key i { display: inline-block; width: 10px; height: 10px; margin-right: 3px; vertical-align: -1px; border-radius: 2px; }
.dragkit-key i.dragkit-dot { border-radius: 50%; }
.dragkit-status { font-size: 11px; min-height: 14px; opacity: 0.8; line-height: 1.3; }
.dragkit-status.dragkit-error { color: #ff8a80; opacity: 1; white-space: normal; }
/* Vue nodes: the node's preview is its input image, which the editor already shows under the points. */
.lg-node:has(.dragkit-editor) div:has(> .lg-node-content) { display: none; }
`;

export function injectStyles() {
  if (document.getElementById(STYLE_ID)) return;
  const style = document.createElement("style");
  style.id = STYLE_ID;
  style.textContent = CSS;
  document.head.append(style);
}
