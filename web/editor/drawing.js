// Drawing the editor's picture: pure functions of a canvas context and what to show (no editor
// state of their own), so the view only decides *when* to draw. Coordinates: the drag is in image
// pixels; `fit` maps them onto the canvas (layout px), letterboxed with the aspect kept.

export const HANDLE_COLOR = "#e53935";
export const TARGET_COLOR = "#1e88e5";
export const MASK_RGBA = [255, 255, 255, 110];
export const REGION_COLORS = { translate: [255, 152, 0], deform: [171, 71, 188], rotate: [0, 188, 212] };
const BRUSH_TOOLS = ["brush", "eraser", "region"];

/** Where a `width`×`height` image lies on a `canvasWidth`×`canvasHeight` canvas. */
export function fitImage(canvasWidth, canvasHeight, width, height) {
  const scale = Math.min(canvasWidth / width, canvasHeight / height);
  return { scale, left: (canvasWidth - width * scale) / 2, top: (canvasHeight - height * scale) / 2 };
}

/** The canvas position of an image pixel's centre. */
export function toScreen(fit, [x, y]) {
  return [fit.left + (x + 0.5) * fit.scale, fit.top + (y + 0.5) * fit.scale];
}

/** The editable mask and the regions painted into `overlay` (a canvas), one RGBA pixel per image pixel. */
export function paintOverlay(overlay, { width, height, mask, regions }, activePair) {
  Object.assign(overlay, { width, height });
  const ctx = overlay.getContext("2d");
  const pixels = ctx.createImageData(width, height);
  const put = (layer, rgba) => {
    for (let i = 0; i < layer.length; i++) if (layer[i]) pixels.data.set(rgba, i * 4);
  };
  if (mask) put(mask, MASK_RGBA);
  for (const [pair, region] of regions) put(region.mask, [...REGION_COLORS[region.type], pair === activePair ? 150 : 90]);
  ctx.putImageData(pixels, 0, 0);
  return overlay;
}

/**
 * The whole picture. `scene`: { width, height } of the canvas (layout px), `state` (the DragState),
 * `image` (or null), `overlay` (paintOverlay's canvas), `pending` (a handle waiting for its target),
 * `hover` (pointer, image px), `tool`, `brushSize`, `activePair`, `focused`.
 */
export function drawScene(ctx, scene) {
  const { state } = scene;
  ctx.clearRect(0, 0, scene.width, scene.height);
  if (!state.hasSize) return drawPlaceholder(ctx, scene);
  const fit = fitImage(scene.width, scene.height, state.width, state.height);
  ctx.save();
  ctx.translate(fit.left, fit.top);
  ctx.scale(fit.scale, fit.scale);
  // Enlarged pictures stay sharp so that every image pixel can be aimed at.
  ctx.imageSmoothingEnabled = fit.scale < 1;
  if (scene.image) ctx.drawImage(scene.image, 0, 0, state.width, state.height);
  else drawMissingImage(ctx, state);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(scene.overlay, 0, 0);
  ctx.restore();
  drawCenters(ctx, fit, state);
  const highlighted = scene.tool !== "points" ? scene.activePair : -1;
  state.pairs.forEach((pair, i) => drawPair(ctx, fit, pair, i, i === highlighted));
  if (scene.pending) drawPending(ctx, fit, scene.pending, scene.tool === "points" ? scene.hover : null);
  if (scene.hover && BRUSH_TOOLS.includes(scene.tool)) drawBrush(ctx, fit, scene.hover, scene.brushSize, scene.tool === "eraser");
  if (!scene.focused) drawFocusHint(ctx);
}

/** The waiting handle, and a dashed band from it to the pointer: where its target will go. */
export function drawPending(ctx, fit, handle, pointer) {
  const [hx, hy] = toScreen(fit, handle);
  if (pointer) {
    const [px, py] = [fit.left + pointer[0] * fit.scale, fit.top + pointer[1] * fit.scale];
    ctx.lineWidth = 2;
    ctx.strokeStyle = "white";
    ctx.setLineDash([6, 4]);
    ctx.beginPath();
    ctx.moveTo(hx, hy);
    ctx.lineTo(px, py);
    ctx.stroke();
    ctx.setLineDash([]);
    drawDot(ctx, [px, py], TARGET_COLOR, true);
  }
  drawDot(ctx, [hx, hy], HANDLE_COLOR, true);
}

export function drawFocusHint(ctx) {
  const text = "click to edit";
  ctx.font = "12px sans-serif";
  const width = ctx.measureText(text).width + 12;
  ctx.fillStyle = "rgba(0,0,0,0.6)";
  ctx.fillRect(4, 4, width, 18);
  ctx.fillStyle = "white";
  ctx.textAlign = "left";
  ctx.fillText(text, 10, 17);
}

export function drawPlaceholder(ctx, { width, height }) {
  ctx.fillStyle = "#888";
  ctx.font = "13px sans-serif";
  ctx.textAlign = "center";
  ctx.fillText("Connect a Load Image node, or queue once, to show the image.", width / 2, height / 2);
}

function drawMissingImage(ctx, { width, height }) {
  ctx.fillStyle = "#333";
  ctx.fillRect(0, 0, width, height);
}

/** Each rotate region's centre (a cross) joined to its pair's handle. */
export function drawCenters(ctx, fit, state) {
  for (const [pair, region] of state.regions) {
    if (region.type !== "rotate" || !region.center || pair >= state.pairs.length) continue;
    const [cx, cy] = toScreen(fit, region.center);
    const [hx, hy] = toScreen(fit, state.pairs[pair].handle);
    ctx.strokeStyle = `rgb(${REGION_COLORS.rotate.join(",")})`;
    ctx.lineWidth = 2;
    ctx.setLineDash([4, 3]);
    ctx.beginPath();
    ctx.moveTo(cx, cy);
    ctx.lineTo(hx, hy);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.beginPath();
    ctx.moveTo(cx - 7, cy);
    ctx.lineTo(cx + 7, cy);
    ctx.moveTo(cx, cy - 7);
    ctx.lineTo(cx, cy + 7);
    ctx.stroke();
  }
}

/** One pair: an arrow from handle (red) to target (blue) and its number (yellow when `highlighted`). */
export function drawPair(ctx, fit, pair, index, highlighted) {
  const [hx, hy] = toScreen(fit, pair.handle);
  const [tx, ty] = toScreen(fit, pair.target);
  const angle = Math.atan2(ty - hy, tx - hx);
  const head = 9;
  ctx.lineWidth = 2;
  ctx.strokeStyle = "white";
  ctx.fillStyle = "white";
  ctx.shadowColor = "rgba(0,0,0,0.8)";
  ctx.shadowBlur = 3;
  ctx.beginPath();
  ctx.moveTo(hx, hy);
  ctx.lineTo(tx - Math.cos(angle) * 6, ty - Math.sin(angle) * 6);
  ctx.stroke();
  ctx.beginPath();
  ctx.moveTo(tx - Math.cos(angle) * 5, ty - Math.sin(angle) * 5);
  ctx.lineTo(tx - Math.cos(angle - 0.45) * (head + 5), ty - Math.sin(angle - 0.45) * (head + 5));
  ctx.lineTo(tx - Math.cos(angle + 0.45) * (head + 5), ty - Math.sin(angle + 0.45) * (head + 5));
  ctx.fill();
  ctx.shadowBlur = 0;
  drawDot(ctx, [hx, hy], HANDLE_COLOR, false);
  drawDot(ctx, [tx, ty], TARGET_COLOR, false);
  ctx.font = "bold 12px sans-serif";
  ctx.textAlign = "center";
  ctx.lineWidth = 3;
  ctx.strokeStyle = "black";
  const label = String(index + 1);
  const [lx, ly] = [hx - Math.cos(angle) * 14, hy - Math.sin(angle) * 14 + 4];
  ctx.strokeText(label, lx, ly);
  ctx.fillStyle = highlighted ? "#ffeb3b" : "white";
  ctx.fillText(label, lx, ly);
}

export function drawDot(ctx, [x, y], color, dashed) {
  ctx.beginPath();
  ctx.arc(x, y, 5, 0, Math.PI * 2);
  ctx.fillStyle = color;
  ctx.fill();
  ctx.lineWidth = 1.5;
  ctx.strokeStyle = "white";
  if (dashed) ctx.setLineDash([2, 2]);
  ctx.stroke();
  ctx.setLineDash([]);
}

/** The brush outline at the pointer (image px), its diameter `size` image px. */
export function drawBrush(ctx, fit, [x, y], size, erasing) {
  ctx.beginPath();
  ctx.arc(fit.left + x * fit.scale, fit.top + y * fit.scale, (size / 2) * fit.scale, 0, Math.PI * 2);
  ctx.lineWidth = 1;
  ctx.strokeStyle = erasing ? "#ff8a80" : "white";
  ctx.stroke();
}
