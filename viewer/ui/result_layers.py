"""AI result records as overlay layers (mask, heat map, boxes) in the card's colours, named so
that a result outside its intended use or with flags never passes for a plain one."""

from __future__ import annotations

import re

from viewer.labels.result_findings import OUTSIDE_INTENDED_USE, caveats
from viewer.labels.results import ResultRecord
from viewer.ui.layers import BoxItem, Layer

#: Layer-name suffix per record layer kind (the Layers panel shows "<model>: <suffix>").
_SUFFIX = {"mask": "mask", "heatmap": "heat map", "boxes": "boxes"}


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))


def device_words(device: str) -> str:
    """The engine's device as the status bar says it: "the CPU", "CUDA", or what actually ran
    after an out-of-memory fallback, e.g. "the CPU (after CUDA out of memory)"."""
    if device == "cpu" or device.startswith("cpu "):
        device = "the " + device
    # Only the device names are shouted, not the explanation around them.
    return re.sub(r"\b(cpu|cuda|mps)\b", lambda m: m.group(0).upper(), device)


def layer_prefix(rec: ResultRecord) -> str:
    """The model part of a result's layer names; a result that must not pass for a plain
    finding says so in every layer's name ("<model> [outside intended use]: mask")."""
    if rec.outside_intended_use:
        return f"{rec.model_name} [{OUTSIDE_INTENDED_USE}]"
    if caveats(rec):
        return f"{rec.model_name} [flagged]"
    return rec.model_name


def layers_for(rec: ResultRecord) -> list[tuple[str, Layer]]:
    """(record kind, Layer) for each layer a record shows, in the card's colours; a flagged
    or outside-intended-use result carries its reasons as each layer's note (tooltip)."""
    out: list[tuple[str, Layer]] = []
    kinds = rec.layers()
    prefix = layer_prefix(rec)
    if "mask" in kinds and rec.label_map is not None:
        colours = {i.index: _rgb(i.color) for i in rec.labels}
        layer = Layer(f"{prefix}: mask", "labels", rec.label_map, opacity=0.45)
        layer.colours = colours
        out.append(("mask", layer))
    if "heatmap" in kinds and rec.heat_map is not None:
        # A segmenter's probability map repeats its mask: there, start it hidden.
        shown = rec.task != "segmentation"
        out.append(
            (
                "heatmap",
                Layer(
                    f"{prefix}: heat map",
                    "heatmap",
                    rec.heat_map,
                    visible=shown,
                    opacity=0.5,
                    threshold=0.3,
                ),
            )
        )
    if "boxes" in kinds:
        colour = _rgb(rec.labels[-1].color) if rec.labels else (255, 210, 0)
        items = []
        for b in rec.boxes:
            lo, hi = b.corners_zyx()
            items.append(BoxItem(lo, hi, b.label, b.score, colour))
        out.append(("boxes", Layer(f"{prefix}: boxes", "boxes", items, opacity=0.9)))
    note = "\n".join(caveats(rec))
    for _, layer in out:
        layer.note = note
    return out
