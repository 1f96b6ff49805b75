// DragKit Editor node: puts the point/region editor on the node and keeps `drag_data` (the
// serialised value: workflow widgets_values and the API prompt) equal to what the editor shows.

import { DragEditor } from "./editor/editor_view.js";

const { app } = window.comfyAPI.app;
const { api } = window.comfyAPI.api;

const NODE_ID = "DragKitEditor";
const VALUE_WIDGET = "drag_data";
const IMAGE_INPUT = "image";
const SOURCE_POLL_MS = 400;
const MIN_EDITOR_HEIGHT = 280;

function chain(target, method, after) {
  const before = target[method];
  target[method] = function (...args) {
    const result = before?.apply(this, args);
    after.apply(this, args);
    return result;
  };
}

function viewUrl({ filename, subfolder = "", type = "input" }) {
  return api.apiURL(`/view?${new URLSearchParams({ filename, subfolder, type })}`);
}

/** `/view` address of a Load Image value: "sub/name.png", optionally annotated " [output]". */
function loadImageUrl(value) {
  const annotated = /^(.*) \[(input|output|temp)\]$/.exec(value);
  const path = annotated ? annotated[1] : value;
  const cut = path.lastIndexOf("/");
  return viewUrl({ filename: path.slice(cut + 1), subfolder: cut < 0 ? "" : path.slice(0, cut), type: annotated?.[2] ?? "input" });
}

/** The picture of the node feeding `image`, when it is a file picker such as Load Image. */
function upstreamImageUrl(node) {
  const slot = node.inputs?.findIndex((input) => input.name === IMAGE_INPUT) ?? -1;
  if (slot < 0) return null;
  const value = node.getInputNode(slot)?.widgets?.find((widget) => widget.name === "image")?.value;
  return typeof value === "string" && value ? loadImageUrl(value) : null;
}

/** The picture the node ran on: its executed message carries it under its own key, not as
 * "images", so that the frontend does not show it again as the node's preview. */
function executedImageUrl(message) {
  const image = message?.dragkit_image?.[0];
  if (!image || typeof image.filename !== "string") return null;
  return viewUrl({ filename: image.filename, subfolder: String(image.subfolder ?? ""), type: String(image.type ?? "temp") });
}

/** Hides the textarea in both renderers (and frees its space); it stays the widget that is serialised. */
function hideWidget(widget) {
  widget.hidden = true;
  widget.options.hidden = true;
  widget.computeLayoutSize = () => ({ minHeight: 0, maxHeight: 0, minWidth: 0 });
}

function attachEditor(node) {
  const valueWidget = node.widgets.find((widget) => widget.name === VALUE_WIDGET);
  hideWidget(valueWidget);
  const editor = new DragEditor({
    onChange: (json) => {
      // A change transaction: ComfyUI's workflow history and its saved copy of the workflow see it.
      app.canvas.emitBeforeChange();
      valueWidget.value = json;
      app.canvas.emitAfterChange();
      node.setDirtyCanvas(true, true);
    },
  });
  // Whoever sets drag_data (workflow load, paste, graph undo) is shown in the editor.
  const setValue = valueWidget.options.setValue;
  valueWidget.options.setValue = (value) => {
    setValue.call(valueWidget.options, value);
    if (value !== editor.value) editor.loadValue(value);
  };
  editor.loadValue(valueWidget.value);
  const widget = node.addDOMWidget("dragkit_editor", "dragkit_editor", editor.element, {
    serialize: false,
    getMinHeight: () => MIN_EDITOR_HEIGHT,
  });
  widget.serialize = false; // not in widgets_values either: drag_data carries the value
  node.dragkitEditor = editor;
  node.dragkitSourcePoll = watchUpstreamImage(node, editor);
  node.setSize([Math.max(node.size[0], 420), Math.max(node.size[1], 460)]);
}

/** Shows the connected Load Image's file before anything is queued, and again when it changes. */
function watchUpstreamImage(node, editor) {
  let shown = null;
  return setInterval(() => {
    if (!node.graph) return;
    const url = upstreamImageUrl(node);
    if (url === shown) return;
    shown = url;
    editor.setImage(url);
  }, SOURCE_POLL_MS);
}

app.registerExtension({
  name: "DragKit.Editor",
  beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== NODE_ID) return;
    chain(nodeType.prototype, "onNodeCreated", function () {
      attachEditor(this);
    });
    chain(nodeType.prototype, "onExecuted", function (message) {
      this.dragkitEditor?.setImage(executedImageUrl(message));
    });
    chain(nodeType.prototype, "onRemoved", function () {
      clearInterval(this.dragkitSourcePoll);
      this.dragkitEditor?.destroy();
    });
    // Canvas mode would draw the same picture again below the editor.
    nodeType.prototype.onDrawBackground = function () {};
  },
});
