"""Hides a model's raw boxes layer while the Document holds those boxes as editable annotations.

A fresh Analyze and a reopened series both bring a model's boxes twice: as Analyze's
stored "<model>: boxes" layer and as Box proposals in the label Document. Drawn twice,
the raw box stays behind when the editable one is moved, so the raw layer is hidden (it
stays in the Layers panel for whoever wants the model's originals).
"""

from __future__ import annotations

from viewer.labels.model import Box, model_source


def raw_boxes_to_hide(document, records, layers) -> list[str]:
    """Names of visible raw boxes layers whose model's boxes are in ``document``.

    ``records``: Analyze's ResultRecords on show; ``layers``: the window's LayerList."""
    sources = {a.source for a in document.annotations.values() if isinstance(a, Box)}
    names = layers.names()
    out = []
    for rec in records:
        raw = f"{rec.model_name}: boxes"
        if model_source(rec.model_id, rec.model_version) not in sources:
            continue
        if raw in names and layers.get(raw).visible:
            out.append(raw)
    return out


class RawBoxesHider:
    """Hides raw boxes layers whenever a boxes layer is added or a Document is opened (a
    reopened series brings both back, in either order: whichever comes second hides)."""

    def __init__(self, state, controller, analyze) -> None:
        self.state, self.controller, self.analyze = state, controller, analyze
        state.layers.subscribe(self._layer_event)
        controller.document_opened.connect(self.hide)

    def _layer_event(self, event: str, layer) -> None:
        if event == "added" and layer.kind == "boxes":
            self.hide()

    def hide(self) -> list[str]:
        """Hide what ``raw_boxes_to_hide`` names; returns those layer names."""
        doc = self.controller.document
        if doc is None:
            return []
        names = raw_boxes_to_hide(doc, self.analyze.records(), self.state.layers)
        for name in names:
            self.state.layers.update(name, visible=False)
        return names
