// The drag being edited, in image pixels, and its schema v1 JSON form (core/drag.py documents it).
// Values read from a workflow are untrusted: parsing checks every field and throws DragDataError.

export const SCHEMA_VERSION = 1;
export const REGION_TYPES = ["translate", "deform", "rotate"];

export class DragDataError extends Error {}

// The server's bounds (core/drag.py), applied before anything is allocated: a workflow's drag_data
// cannot make the tab allocate more than the server would accept.
export const LIMITS = { maxSide: 8192, maxPixels: 2 ** 25, maxPairs: 100, maxMaskPixels: 2 ** 26, maxChars: 16_000_000 };

/** Alternating run lengths of 0 and 1 over the row-major mask, starting with a run of 0. */
export function encodeRle(mask) {
  const runs = [];
  let current = 0;
  let length = 0;
  for (let i = 0; i < mask.length; i++) {
    const bit = mask[i] ? 1 : 0;
    if (bit !== current) {
      runs.push(length);
      current = bit;
      length = 0;
    }
    length++;
  }
  runs.push(length);
  return runs;
}

export function decodeRle(runs, width, height, what) {
  if (!Array.isArray(runs) || runs.some((n) => !Number.isInteger(n) || n < 0)) {
    throw new DragDataError(`${what}: run lengths must be non-negative integers`);
  }
  const total = runs.reduce((sum, n) => sum + n, 0);
  if (total !== width * height) {
    throw new DragDataError(`${what} covers ${total} pixels but the image is ${width}×${height}`);
  }
  const mask = new Uint8Array(width * height);
  let offset = 0;
  runs.forEach((n, i) => {
    if (i % 2 === 1) mask.fill(1, offset, offset + n);
    offset += n;
  });
  return mask;
}

function isEmpty(mask) {
  return !mask || !mask.some((v) => v);
}

function readSize(value, what) {
  if (!Number.isInteger(value) || value <= 0 || value > LIMITS.maxSide) {
    throw new DragDataError(`${what} must be a whole number of pixels from 1 to ${LIMITS.maxSide}`);
  }
  return value;
}

function readPoint(value, what) {
  if (!Array.isArray(value) || value.length !== 2 || !value.every(Number.isFinite)) {
    throw new DragDataError(`${what} must be [x, y] with two finite numbers`);
  }
  return [value[0], value[1]];
}

function readMask(value, width, height, what) {
  if (value === null || typeof value !== "object") throw new DragDataError(`${what} must be {"rle": [...]}`);
  return decodeRle(value.rle, width, height, what);
}

export class DragState {
  constructor() {
    this.width = 0;
    this.height = 0;
    this.pairs = []; // {handle: [x, y], target: [x, y]}
    this.mask = null; // Uint8Array(width·height), 1 = editable; null = nothing painted
    this.regions = new Map(); // pair index → {type, center: [x, y] | null, mask: Uint8Array}
  }

  get hasSize() {
    return this.width > 0 && this.height > 0;
  }

  get isBlank() {
    return this.pairs.length === 0 && isEmpty(this.mask) && [...this.regions.values()].every((r) => isEmpty(r.mask));
  }

  static fromJSON(text) {
    const state = new DragState();
    if (!text || !text.trim()) return state;
    if (text.length > LIMITS.maxChars) throw new DragDataError(`drag_data is ${text.length} characters; at most ${LIMITS.maxChars}`);
    let data;
    try {
      data = JSON.parse(text);
    } catch (error) {
      throw new DragDataError(`drag_data is not valid JSON (${error.message})`);
    }
    if (data === null || typeof data !== "object" || Array.isArray(data)) {
      throw new DragDataError("drag_data must be a JSON object");
    }
    if (data.version !== SCHEMA_VERSION) {
      throw new DragDataError(`drag_data has schema version ${JSON.stringify(data.version)}; this editor reads version 1`);
    }
    state.width = readSize(data.width, "width");
    state.height = readSize(data.height, "height");
    const pixels = state.width * state.height;
    if (pixels > LIMITS.maxPixels) {
      throw new DragDataError(`the image is ${state.width}×${state.height}; at most ${LIMITS.maxPixels} pixels are supported`);
    }
    if (!Array.isArray(data.pairs)) throw new DragDataError("pairs must be a list");
    if (data.pairs.length > LIMITS.maxPairs) throw new DragDataError(`there are ${data.pairs.length} pairs; at most ${LIMITS.maxPairs}`);
    const layers = (data.mask == null ? 0 : 1) + (Array.isArray(data.regions) ? data.regions.length : 0);
    if (layers * pixels > LIMITS.maxMaskPixels) {
      throw new DragDataError(`the drag has ${layers} masks of ${state.width}×${state.height}; at most ${LIMITS.maxMaskPixels} pixels in all`);
    }
    state.pairs = data.pairs.map((pair, i) => {
      if (pair === null || typeof pair !== "object") throw new DragDataError(`pair ${i + 1} must be an object`);
      return { handle: readPoint(pair.handle, `pair ${i + 1} handle`), target: readPoint(pair.target, `pair ${i + 1} target`) };
    });
    state.mask = data.mask == null ? null : readMask(data.mask, state.width, state.height, "mask");
    if (data.regions != null && !Array.isArray(data.regions)) throw new DragDataError("regions must be a list");
    for (const region of data.regions ?? []) state.#readRegion(region);
    return state;
  }

  #readRegion(region) {
    if (region === null || typeof region !== "object") throw new DragDataError("every region must be an object");
    const pair = region.pair;
    if (!Number.isInteger(pair) || pair < 0 || pair >= this.pairs.length) {
      throw new DragDataError(`a region refers to pair ${JSON.stringify(pair)}, which does not exist`);
    }
    if (!REGION_TYPES.includes(region.type)) {
      throw new DragDataError(`the region of pair ${pair + 1} has an unknown type; use ${REGION_TYPES.join(", ")}`);
    }
    this.regions.set(pair, {
      type: region.type,
      center: region.center == null ? null : readPoint(region.center, `the centre of region ${pair + 1}`),
      mask: readMask(region.mask, this.width, this.height, `the mask of region ${pair + 1}`),
    });
  }

  toJSON() {
    const regions = [...this.regions.entries()]
      .filter(([, region]) => !isEmpty(region.mask))
      .sort(([a], [b]) => a - b)
      .map(([pair, region]) => {
        const out = { pair, type: region.type, mask: { rle: encodeRle(region.mask) } };
        if (region.type === "rotate" && region.center) out.center = [...region.center];
        return out;
      });
    return JSON.stringify({
      version: SCHEMA_VERSION,
      width: this.width,
      height: this.height,
      pairs: this.pairs.map((p) => ({ handle: [...p.handle], target: [...p.target] })),
      // An all-zero mask is invalid (core/drag.py): nothing painted means the whole image is editable.
      mask: isEmpty(this.mask) ? null : { rle: encodeRle(this.mask) },
      regions,
    });
  }

  /** The layer a brush paints on: the editable mask, or the region of pair `pair`. */
  layer(pairIndex) {
    if (pairIndex === null) {
      this.mask ??= new Uint8Array(this.width * this.height);
      return this.mask;
    }
    return this.region(pairIndex).mask;
  }

  region(pairIndex) {
    if (!this.regions.has(pairIndex)) {
      this.regions.set(pairIndex, { type: "translate", center: null, mask: new Uint8Array(this.width * this.height) });
    }
    return this.regions.get(pairIndex);
  }

  deletePair(index) {
    this.pairs.splice(index, 1);
    const shifted = new Map();
    for (const [pair, region] of this.regions) {
      if (pair !== index) shifted.set(pair > index ? pair - 1 : pair, region);
    }
    this.regions = shifted;
  }

  /** Moves everything onto a width × height image (another picture loaded in the LoadImage node). */
  resize(width, height) {
    const sx = width / this.width;
    const sy = height / this.height;
    const scale = ([x, y]) => [Math.min(Math.floor(x * sx), width - 1), Math.min(Math.floor(y * sy), height - 1)];
    const resample = (mask) => resampleMask(mask, this.width, this.height, width, height);
    this.pairs = this.pairs.map((p) => ({ handle: scale(p.handle), target: scale(p.target) }));
    this.mask = this.mask && resample(this.mask);
    for (const region of this.regions.values()) {
      region.mask = resample(region.mask);
      region.center = region.center && scale(region.center);
    }
    this.width = width;
    this.height = height;
  }
}

function resampleMask(mask, fromWidth, fromHeight, width, height) {
  const out = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const row = Math.floor(((y + 0.5) * fromHeight) / height) * fromWidth;
    for (let x = 0; x < width; x++) out[y * width + x] = mask[row + Math.floor(((x + 0.5) * fromWidth) / width)];
  }
  return out;
}

/** Sets (value 1) or clears (value 0) the pixels whose centres lie within `radius` of (cx, cy). */
export function paintDisc(mask, width, height, cx, cy, radius, value) {
  const x0 = Math.max(0, Math.floor(cx - radius));
  const x1 = Math.min(width - 1, Math.ceil(cx + radius));
  const y0 = Math.max(0, Math.floor(cy - radius));
  const y1 = Math.min(height - 1, Math.ceil(cy + radius));
  const r2 = radius * radius;
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const dx = x + 0.5 - cx;
      const dy = y + 0.5 - cy;
      if (dx * dx + dy * dy <= r2) mask[y * width + x] = value;
    }
  }
}
