// MGLD-VSR frontend extension: writes the figures of MGLD Warping Error and the table of MGLD Guidance
// Preview on the node after a run.
// The node returns {"ui": {"text": [...]}} as core nodes do; the frontend shows such text only for
// nodes that ask for it (as core Preview Any does), so a read-only text box is added here.
import { app } from "../../../scripts/app.js";
import { ComfyWidgets } from "../../../scripts/widgets.js";

const FIGURES = "figures_shown";
// Nodes whose ui text is shown on them.
const SHOWS_TEXT = ["MGLDWarpingError", "MGLDGuidancePreview"];

app.registerExtension({
  name: "MGLD-VSR.WarpingErrorFigures",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!SHOWS_TEXT.includes(nodeData.name)) return;

    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = onNodeCreated?.apply(this, arguments);
      const widget = ComfyWidgets["STRING"](this, FIGURES, ["STRING", { multiline: true }], app).widget;
      widget.element.readOnly = true;
      widget.element.placeholder = "warping error figures appear here after a run";
      widget.element.style.fontFamily = "monospace";
      widget.serialize = false; // not saved in workflows ...
      widget.options = { ...(widget.options ?? {}), serialize: false }; // ... nor sent to the server
      return result;
    };

    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const widget = this.widgets?.find((w) => w.name === FIGURES);
      if (widget && message?.text) widget.value = [].concat(message.text).join("\n");
    };
  },
});
