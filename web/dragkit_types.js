// Colours for DragKit's own socket types, so that their dots and links are told apart at a glance
// (a type without a colour is drawn as a hollow grey dot). The colour palette rewrites every known
// type's colour when it loads or changes (to "" when it has none), so DragKit's colours are kept
// behind accessors there, and as stylesheet defaults for Vue nodes' per-type CSS variables.

const { app } = window.comfyAPI.app;

export const TYPE_COLORS = {
  DRAGKIT_DRAG: "#26C6DA",
  DRAGKIT_INVERSION: "#D4E157",
  DRAGKIT_EDIT: "#FF7043",
  DRAGKIT_SAM2_MODEL: "#A1887F",
};

/** `colors[type]` reads as the palette's colour for `type` when it has one, else as `color`. */
function keepColor(colors, type, color) {
  let fromPalette = "";
  Object.defineProperty(colors, type, {
    get: () => fromPalette || color,
    set: (value) => {
      fromPalette = value;
    },
    enumerable: true,
    configurable: true,
  });
}

app.registerExtension({
  name: "DragKit.Types",
  setup() {
    for (const colors of [app.canvas.default_connection_color_byType, app.canvas.constructor.link_type_colors]) {
      if (colors) for (const [type, color] of Object.entries(TYPE_COLORS)) keepColor(colors, type, color);
    }
    const style = document.createElement("style");
    style.textContent = `:root { ${Object.entries(TYPE_COLORS).map(([t, c]) => `--color-datatype-${t}: ${c};`).join(" ")} }`;
    document.head.append(style);
    app.canvas.setDirty(true, true);
  },
});
