// The point/region editor: a DOM <canvas> with a toolbar and a legend. Everything it stores is in
// image pixels; the canvas only maps pointer positions onto the image, whatever the node size or zoom.
// Text that may come from a workflow file is only ever set with textContent.

import { DragDataError, DragState, paintDisc, REGION_TYPES } from "./drag_state.js";
import { drawScene, fitImage, HANDLE_COLOR, MASK_RGBA, paintOverlay, REGION_COLORS, TARGET_COLOR } from "./drawing.js";
import { History } from "./history.js";
import { injectStyles } from "./styles.js";

const HIT_RADIUS = 9; // layout px around a point that grab it

const TOOLS = {
  points: { key: "p", label: "Points", hint: "Click a handle, then its target · drag a point to move it · right-click deletes a pair" },
  brush: { key: "b", label: "Brush", hint: "Paint the editable region ( [ ] size ) · nothing painted = whole image editable" },
  eraser: { key: "e", label: "Eraser", hint: "Erase the editable region ( [ ] size )" },
  region: { key: "r", label: "Region", hint: "Paint the selected pair's region (right-drag erases) · choose its type" },
  center: { key: "c", label: "Centre", hint: "Click the rotation centre of the selected pair's region" },
};
const BRUSH_FRACTION = 1 / 16; // default brush: a sixteenth of the picture's longer side (32 px on 512)

function element(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  node.append(...children);
  return node;
}

export class DragEditor {
  /** `onChange(json)` receives the drag's JSON after every edit, undo and redo. */
  constructor({ onChange }) {
    injectStyles();
    this.onChange = onChange;
    this.state = new DragState();
    this.history = new History("");
    this.tool = "points";
    this.brushSize = 12;
    this.brushChosen = false; // the user set a size: keep it when the picture changes
    this.activePair = 0;
    this.pending = null; // a handle waiting for its target
    this.gesture = null; // the pointer interaction in progress
    this.hover = null; // pointer position in image pixels
    this.image = null;
    this.imageUrl = null;
    this.loadError = null;
    this.overlay = document.createElement("canvas");
    this.overlayDirty = true;
    this.frameRequested = false;
    this.framesDrawn = 0; // how often the picture was drawn (tests check that bursts draw once)
    this.#build();
    this.resizeObserver = new ResizeObserver(() => this.render());
    this.resizeObserver.observe(this.stage);
  }

  /** The JSON last written or loaded: what the node's drag_data holds. */
  get value() {
    return this.history.current;
  }

  /** Shows the drag in `text` (a workflow, a paste, an undo of the graph); starts a new history. */
  loadValue(text) {
    this.history.reset(text ?? "");
    this.#showValue(this.history.current);
    this.#fitToImage();
  }

  setImage(url) {
    if (!url || url === this.imageUrl) return;
    this.imageUrl = url;
    const image = new Image();
    image.onload = () => {
      if (this.imageUrl !== url) return;
      this.image = image;
      this.#fitToImage();
      this.render();
    };
    image.onerror = () => this.#setStatus(`The image could not be loaded (${url}).`, true);
    image.src = url;
  }

  destroy() {
    this.resizeObserver.disconnect();
  }

  // --- state ---------------------------------------------------------------------------------

  #showValue(text) {
    try {
      this.state = DragState.fromJSON(text);
      this.loadError = null;
    } catch (error) {
      if (!(error instanceof DragDataError)) throw error;
      this.state = new DragState();
      this.loadError = `${error.message}. Editing starts a new drag.`;
    }
    if (this.image && !this.state.hasSize) [this.state.width, this.state.height] = this.#imageSize();
    this.pending = null;
    this.activePair = Math.min(this.activePair, Math.max(0, this.state.pairs.length - 1));
    this.#changed();
  }

  #imageSize() {
    return [this.image.naturalWidth, this.image.naturalHeight];
  }

  /** Keeps the drag on the shown image: its size is the image's natural size. */
  #fitToImage() {
    if (!this.image) return;
    const [width, height] = this.#imageSize();
    if (!this.brushChosen) this.#setBrushSize(Math.max(4, Math.round(Math.max(width, height) * BRUSH_FRACTION)));
    if (!this.state.hasSize) {
      this.state.width = width;
      this.state.height = height;
    } else if (this.state.width !== width || this.state.height !== height) {
      const from = `${this.state.width}×${this.state.height}`;
      this.state.resize(width, height);
      if (this.value) this.#commit();
      this.#setStatus(`The image changed size: the drag was scaled from ${from} to ${width}×${height}.`, false);
    }
    this.#changed();
  }

  #commit() {
    const json = this.state.toJSON();
    this.loadError = null;
    this.history.push(json);
    this.onChange(json);
    this.#changed();
  }

  #restore(json) {
    if (json === null) return;
    this.#showValue(json);
    this.onChange(json);
  }

  #changed() {
    this.overlayDirty = true;
    this.#syncControls();
    this.render();
  }

  // --- DOM -------------------------------------------------------------------------------------

  #build() {
    this.canvas = element("canvas", { className: "dragkit-canvas" });
    this.stage = element("div", { className: "dragkit-stage" }, [this.canvas]);
    this.toolButtons = Object.fromEntries(
      Object.entries(TOOLS).map(([tool, spec]) => [
        tool,
        this.#button(spec.label, `${spec.label} (${spec.key.toUpperCase()})`, () => this.#selectTool(tool)),
      ]),
    );
    this.sizeInput = element("input", { type: "range", min: 1, max: 128, value: this.brushSize, title: "Brush size in image pixels ( [ ] )" });
    this.sizeInput.addEventListener("input", () => this.#chooseBrushSize(Number(this.sizeInput.value)));
    this.sizeInput.addEventListener("change", () => this.#takeKeys());
    this.sizeLabel = element("span", { className: "dragkit-size" });
    this.pairSelect = element("select", { title: "The pair whose region is painted (1–9)" });
    this.pairSelect.addEventListener("change", () => {
      this.#selectPair(Number(this.pairSelect.value));
      this.#takeKeys();
    });
    this.typeSelect = element("select", { title: "How the region moves (DragNeXt)" },
      REGION_TYPES.map((type) => element("option", { value: type, textContent: type })));
    this.typeSelect.addEventListener("change", () => {
      this.#setRegionType(this.typeSelect.value);
      this.#takeKeys();
    });
    this.undoButton = this.#button("↶", "Undo (Z)", () => this.#restore(this.history.undo()));
    this.redoButton = this.#button("↷", "Redo (Shift+Z or Y)", () => this.#restore(this.history.redo()));
    const clearButton = this.#button("Clear", "Remove all pairs, the mask and the regions", () => this.#clear());
    // Two rows that fit the example workflows' node width (340): the tools and Clear, then the
    // tools' settings and the history.
    const toolbar = element("div", { className: "dragkit-toolbar" }, [
      element("div", { className: "dragkit-row" }, [...Object.values(this.toolButtons), clearButton]),
      element("div", { className: "dragkit-row" }, [
        element("label", { className: "dragkit-group", title: this.sizeInput.title }, [this.sizeInput, this.sizeLabel]),
        element("span", { className: "dragkit-group" }, [this.pairSelect, this.typeSelect]),
        this.undoButton, this.redoButton,
      ]),
    ]);
    this.status = element("div", { className: "dragkit-status" });
    this.element = element("div", { className: "dragkit-editor widget-expands", tabIndex: 0 }, [toolbar, this.stage, this.#legend(), this.status]);
    this.#listen();
    this.#setBrushSize(this.brushSize);
    this.#selectTool("points");
  }

  #button(text, title, onClick) {
    const button = element("button", { type: "button", textContent: text, title });
    button.addEventListener("click", (event) => {
      event.stopPropagation();
      onClick();
      this.#takeKeys();
    });
    return button;
  }

  #legend() {
    const swatch = (rgb, label) => element("span", { className: "dragkit-key" },
      [element("i", { style: `background: rgb(${rgb.join(",")})` }), label]);
    const dot = (color, label) => element("span", { className: "dragkit-key" },
      [element("i", { className: "dragkit-dot", style: `background: ${color}` }), label]);
    return element("div", { className: "dragkit-legend" }, [
      dot(HANDLE_COLOR, "handle"), dot(TARGET_COLOR, "target"), swatch(MASK_RGBA.slice(0, 3), "editable"),
      ...REGION_TYPES.map((type) => swatch(REGION_COLORS[type], type)),
      element("span", { className: "dragkit-key", textContent: "✛ centre" }),
    ]);
  }

  #syncControls() {
    const count = this.state.pairs.length;
    this.pairSelect.replaceChildren(...this.state.pairs.map((_, i) =>
      element("option", { value: String(i), textContent: `pair ${i + 1}` })));
    this.pairSelect.disabled = count === 0;
    this.pairSelect.value = String(this.activePair);
    const region = this.state.regions.get(this.activePair);
    this.typeSelect.value = region?.type ?? "translate";
    this.typeSelect.disabled = count === 0;
    this.toolButtons.center.disabled = region?.type !== "rotate";
    this.undoButton.disabled = !this.history.past.length;
    this.redoButton.disabled = !this.history.future.length;
    if (this.loadError) this.#setStatus(this.loadError, true);
  }

  /** Gives the keyboard back to the editor after a toolbar control took it. */
  #takeKeys() {
    this.element.focus({ preventScroll: true });
  }

  #hasFocus() {
    return this.element.contains(document.activeElement);
  }

  #setStatus(text, isError) {
    this.status.textContent = text;
    this.status.classList.toggle("dragkit-error", isError);
  }

  #selectTool(tool) {
    this.tool = tool;
    for (const [name, button] of Object.entries(this.toolButtons)) button.classList.toggle("dragkit-active", name === tool);
    this.#setStatus(TOOLS[tool].hint, false);
    this.render();
  }

  #selectPair(index) {
    if (index < 0 || index >= this.state.pairs.length) return;
    this.activePair = index;
    this.#changed();
  }

  #chooseBrushSize(size) {
    this.brushChosen = true;
    this.#setBrushSize(size);
  }

  #setBrushSize(size) {
    this.brushSize = Math.max(1, Math.min(128, Math.round(size)));
    this.sizeInput.value = String(this.brushSize);
    this.sizeLabel.textContent = `${this.brushSize}px`;
    this.render();
  }

  #setRegionType(type) {
    if (!this.state.pairs.length) return;
    this.state.region(this.activePair).type = type;
    if (type !== "rotate" && this.tool === "center") this.#selectTool("region");
    this.#commit();
  }

  #clear() {
    this.state = Object.assign(new DragState(), { width: this.state.width, height: this.state.height });
    this.pending = null;
    this.activePair = 0;
    this.#commit();
  }

  // --- input -----------------------------------------------------------------------------------

  #listen() {
    const canvas = this.canvas;
    canvas.addEventListener("pointerdown", (event) => this.#onPointerDown(event));
    canvas.addEventListener("pointermove", (event) => this.#onPointerMove(event));
    canvas.addEventListener("pointerup", (event) => this.#onPointerUp(event));
    canvas.addEventListener("pointercancel", (event) => this.#onPointerUp(event));
    canvas.addEventListener("pointerleave", () => {
      this.hover = null;
      this.render();
    });
    // No browser or graph context menu over the image: right-click deletes and erases here.
    canvas.addEventListener("contextmenu", (event) => {
      event.preventDefault();
      event.stopPropagation();
    });
    this.element.addEventListener("keydown", (event) => this.#onKey(event));
    this.element.addEventListener("focusin", () => this.render());
    this.element.addEventListener("focusout", () => this.render());
    // Vue nodes: pressing a toolbar control (dragging the size slider) must not drag the node.
    this.element.addEventListener("pointerdown", (event) => {
      if (event.button !== 1) event.stopPropagation();
    });
  }

  /** Pointer position in image pixels (continuous), through the canvas's on-screen box. */
  #toImage(event) {
    const rect = this.canvas.getBoundingClientRect();
    const x = ((event.clientX - rect.left) / rect.width) * this.canvas.clientWidth;
    const y = ((event.clientY - rect.top) / rect.height) * this.canvas.clientHeight;
    const { scale, left, top } = this.#fit();
    return [(x - left) / scale, (y - top) / scale];
  }

  #pixel([x, y]) {
    const clamp = (v, size) => Math.min(Math.max(Math.floor(v), 0), size - 1);
    return [clamp(x, this.state.width), clamp(y, this.state.height)];
  }

  #onPointerDown(event) {
    if (event.button === 1) return; // middle button pans the graph
    // The graph must not pan, select or drag the node while the user edits the image.
    event.stopPropagation();
    event.preventDefault();
    if (!this.#hasFocus()) {
      // The click that selects the editor places nothing: it only gives it the keys.
      this.#takeKeys();
      return;
    }
    if (!this.state.hasSize) return;
    const at = this.#toImage(event);
    this.gesture = this.#startGesture(at, event.button === 2);
    if (this.gesture) this.canvas.setPointerCapture(event.pointerId);
    this.render();
  }

  #startGesture(at, secondary) {
    switch (this.tool) {
      case "points":
        return secondary ? this.#deleteAt(at) : this.#grabOrPlace(at);
      case "brush":
      case "eraser":
        return secondary ? null : this.#stroke(null, this.tool === "brush" ? 1 : 0, at);
      case "region":
        if (!this.state.pairs.length) {
          this.#setStatus("Place a handle → target pair first; each region belongs to a pair.", true);
          return null;
        }
        return this.#stroke(this.activePair, secondary ? 0 : 1, at);
      default: // the rotation centre
        if (!secondary) this.#setCenter(at);
        return null;
    }
  }

  #grabOrPlace(at) {
    const hit = this.#hitPoint(at);
    if (hit) return { kind: "move", ...hit, moved: false };
    const point = this.#pixel(at);
    if (!this.pending) {
      this.pending = point;
      return null;
    }
    this.state.pairs.push({ handle: this.pending, target: point });
    this.pending = null;
    this.activePair = this.state.pairs.length - 1;
    this.#commit();
    return null;
  }

  #deleteAt(at) {
    const hit = this.#hitPoint(at);
    if (hit?.which === "pending") this.pending = null;
    else if (hit) {
      this.state.deletePair(hit.index);
      this.activePair = Math.min(this.activePair, Math.max(0, this.state.pairs.length - 1));
      this.#commit();
    }
    return null;
  }

  /** The point under `at`: a pair's handle or target, or the waiting handle. */
  #hitPoint([x, y]) {
    const radius = HIT_RADIUS / this.#fit().scale;
    const near = ([px, py]) => Math.hypot(px + 0.5 - x, py + 0.5 - y) <= radius;
    if (this.pending && near(this.pending)) return { which: "pending" };
    for (let i = this.state.pairs.length - 1; i >= 0; i--) {
      const pair = this.state.pairs[i];
      if (near(pair.target)) return { which: "target", index: i };
      if (near(pair.handle)) return { which: "handle", index: i };
    }
    return null;
  }

  #stroke(pairIndex, value, at) {
    const gesture = { kind: "stroke", layer: this.state.layer(pairIndex), value, last: at };
    this.#paint(gesture, at);
    return gesture;
  }

  #paint(gesture, [x, y]) {
    const { width, height } = this.state;
    const radius = this.brushSize / 2;
    const [lx, ly] = gesture.last;
    const steps = Math.max(1, Math.ceil(Math.hypot(x - lx, y - ly) / Math.max(radius / 2, 0.5)));
    for (let s = 1; s <= steps; s++) {
      const t = s / steps;
      paintDisc(gesture.layer, width, height, lx + (x - lx) * t, ly + (y - ly) * t, radius, gesture.value);
    }
    gesture.last = [x, y];
    this.overlayDirty = true;
  }

  #setCenter(at) {
    const region = this.state.region(this.activePair);
    region.type = "rotate";
    region.center = this.#pixel(at);
    this.#selectTool("region");
    this.#commit();
  }

  #onPointerMove(event) {
    if (event.buttons & 4) return; // middle-button panning belongs to the graph
    event.stopPropagation();
    if (!this.state.hasSize) return;
    const at = this.#toImage(event);
    this.hover = at;
    const gesture = this.gesture;
    if (gesture?.kind === "move") {
      const point = this.#pixel(at);
      if (gesture.which === "pending") this.pending = point;
      else this.state.pairs[gesture.index][gesture.which] = point;
      gesture.moved = true;
    } else if (gesture?.kind === "stroke") {
      this.#paint(gesture, at);
    }
    this.render();
  }

  #onPointerUp(event) {
    if (!this.gesture) return;
    event.stopPropagation();
    const gesture = this.gesture;
    this.gesture = null;
    if (this.canvas.hasPointerCapture(event.pointerId)) this.canvas.releasePointerCapture(event.pointerId);
    if (gesture.kind === "stroke" || (gesture.moved && gesture.which !== "pending")) this.#commit();
    else this.render();
  }

  #onKey(event) {
    if (event.target !== this.element || event.ctrlKey || event.metaKey || event.altKey) return;
    const action = this.#keyAction(event.key);
    if (!action) return;
    // Handled here: ComfyUI's single-key shortcuts must not also fire.
    event.preventDefault();
    event.stopPropagation();
    action();
  }

  #keyAction(key) {
    const tool = Object.entries(TOOLS).find(([, spec]) => spec.key === key.toLowerCase());
    if (tool && !(tool[0] === "center" && this.toolButtons.center.disabled)) return () => this.#selectTool(tool[0]);
    if (key === "z") return () => this.#restore(this.history.undo());
    if (key === "Z" || key === "y") return () => this.#restore(this.history.redo());
    if (key === "[") return () => this.#chooseBrushSize(this.brushSize - Math.max(1, this.brushSize * 0.2));
    if (key === "]") return () => this.#chooseBrushSize(this.brushSize + Math.max(1, this.brushSize * 0.2));
    if (key === "Escape" && this.pending) return () => { this.pending = null; this.render(); };
    if (/^[1-9]$/.test(key)) return () => this.#selectPair(Number(key) - 1);
    return null;
  }

  // --- drawing (web/editor/drawing.js) ----------------------------------------------------------

  /** Where the image lies on the canvas (layout px): letterboxed, aspect kept. */
  #fit() {
    return fitImage(this.canvas.clientWidth, this.canvas.clientHeight, this.state.width, this.state.height);
  }

  /** Asks for a redraw: any number of changes within one frame (a burst of pointer events) draw once. */
  render() {
    if (this.frameRequested) return;
    this.frameRequested = true;
    requestAnimationFrame(() => {
      this.frameRequested = false;
      this.#draw();
    });
  }

  #draw() {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== width || canvas.height !== height) Object.assign(canvas, { width, height });
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    if (this.overlayDirty && this.state.hasSize) {
      paintOverlay(this.overlay, this.state, this.activePair);
      this.overlayDirty = false;
    }
    drawScene(ctx, {
      width: canvas.clientWidth, height: canvas.clientHeight, state: this.state, image: this.image,
      overlay: this.overlay, pending: this.pending, hover: this.hover, tool: this.tool, brushSize: this.brushSize,
      activePair: this.activePair, focused: this.#hasFocus(),
    });
    this.framesDrawn += 1;
  }
}
