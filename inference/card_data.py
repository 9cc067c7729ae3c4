"""What a model package's JSON may hold (plain data, never an expression) and the error naming
a bad field: the ground both the card and the MONAI-bundle reader stand on."""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from radlens_core.errors import UserError


class CardError(UserError, ValueError):
    """A model package whose card is missing or wrong; the message names the path and field."""


def refuse_expressions(value: Any, where: str, path: Path) -> Any:
    """``value`` unchanged if it is plain data; CardError naming ``where`` in ``path`` if it,
    or anything inside it, is a ``$``/``@``/``%`` expression or reference (never evaluated)."""
    if isinstance(value, str) and value.startswith(("$", "@", "%")):
        raise CardError(
            f"{path}: field '{where}' is an expression ({value[:60]!r}); bundle expressions are"
            " refused, never evaluated"
        )
    if isinstance(value, dict):
        return {k: refuse_expressions(v, f"{where}.{k}", path) for k, v in value.items()}
    if isinstance(value, list):
        return [refuse_expressions(v, f"{where}[{i}]", path) for i, v in enumerate(value)]
    return value


#: A card or bundle metadata file larger than this is refused before it is parsed.
MAX_JSON_BYTES = 1_000_000
#: Deeper nesting than this is refused before parsing (Python's parser recurses per level).
MAX_JSON_DEPTH = 32
# C0/C1 controls (tab and newline allowed where a text may span lines), and the Unicode
# bidirectional overrides that make text read differently from what it is.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def json_depth(text: str) -> int:
    """How deeply ``text``'s arrays and objects nest (brackets inside strings not counted)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def read_json_capped(path: Path, what: str = "model card") -> Any:
    """``path``'s JSON, after checking it is a regular file within the size and nesting caps;
    CardError naming the file and the cap otherwise (never a RecursionError or a huge read)."""
    try:
        st = path.stat()
    except OSError as exc:
        raise CardError(f"{path}: cannot read the {what} ({exc})") from exc
    if not stat.S_ISREG(st.st_mode):
        raise CardError(f"{path}: the {what} is not a regular file; refused")
    if st.st_size > MAX_JSON_BYTES:
        raise CardError(
            f"{path}: the {what} is {st.st_size:,} bytes; the limit is {MAX_JSON_BYTES:,}"
            " bytes, so it was refused unread"
        )
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_JSON_BYTES + 1)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CardError(f"{path}: cannot read the {what} ({exc})") from exc
    if len(raw) > MAX_JSON_BYTES:
        raise CardError(f"{path}: the {what} is over {MAX_JSON_BYTES:,} bytes; refused unread")
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise CardError(
            f"{path}: the {what} nests {depth} levels deep; the limit is {MAX_JSON_DEPTH},"
            " so it was refused unread"
        )
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CardError(f"{path}: cannot read the {what} ({exc})") from exc


def plain_text(value: str, where: str, path: Path, multiline: bool = False) -> str:
    """``value`` if it holds no control characters (tab/newline allowed when ``multiline``);
    CardError naming the field otherwise. Card text is shown as plain text, never markup."""
    bad = (_CONTROL if multiline else _CONTROL_LINE).search(value)
    if bad:
        raise CardError(
            f"{path}: field '{where}' holds a control character (U+{ord(bad.group()):04X});"
            " card text must be plain text"
        )
    return value


def package_file(folder: Path, name: str) -> Path:
    """The real path of ``name`` inside the package ``folder``, checked before anything opens
    it: it must resolve inside the folder (a symlink leaving it is refused) and be a regular
    file (no device, FIFO or socket). CardError with a sentence otherwise."""
    root = Path(folder).resolve()
    path = Path(folder) / name
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise CardError(f"{path}: file is missing from the model package ({exc})") from exc
    if not real.is_relative_to(root):
        raise CardError(
            f"{path}: points outside the model package (to {real}); weights must be files"
            " inside the package folder, so it was refused"
        )
    try:
        mode = real.stat().st_mode
    except OSError as exc:
        raise CardError(f"{path}: cannot read ({exc})") from exc
    if not stat.S_ISREG(mode):
        raise CardError(
            f"{path}: is not a regular file (a device, FIFO or folder); weights must be"
            " regular files, so it was refused"
        )
    return real


# ---- the boundary fields: where a model may run, what its results may plausibly be --------
# The card's boundary fields: where a model may run (``max_input_size``) and what its results
# may plausibly be (``plausibility``, ``ood``), validated as plain data with a sentence per field.
#
#     "max_input_size": [x, y, z]                     largest image, in voxels per axis
#     "plausibility": {"volume_ml": {"lung": [min, max]},   per structure, mL
#                      "max_findings": 10,                  boxes, or components of finding_labels
#                      "max_finding_mm": 40.0,              largest extent of one finding
#                      "finding_labels": ["nodule"]}        segmenters: labels whose parts are findings
#     "ood": {"score": "mean_max_softmax_foreground", "range": [lo, hi]}
#     "ood": {"score": "input_histogram", "range": [lo, 1.0],      the input's intensities,
#             "reference": {"range": [0.0, 1.0],                  as the network sees them,
#                           "histogram": [0.41, 0.02, ...]}}      against the validation data's

#: OOD scores the engine computes, by the task that can compute them (inference.ood).
OOD_SCORES = {
    "input_histogram": ("segmentation", "detection", "classification"),
    "mean_max_softmax_foreground": ("segmentation",),
    "max_probability": ("classification",),
    "mean_box_score": ("detection",),
    "max_box_score": ("detection",),
}
OOD_KEYS = ("score", "range", "reference", "measured_on")
#: A reference histogram has this many bins at least and at most.
HISTOGRAM_BINS = (2, 256)
PLAUSIBILITY_KEYS = (
    "volume_ml",
    "max_findings",
    "max_finding_mm",
    "finding_labels",
    "measured_on",
)

ErrorFactory = Callable[[str, str], Exception]


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x and abs(x) < 1e300


def _range(value: Any, fld: str, error: ErrorFactory) -> tuple[float, float]:
    if not (isinstance(value, list) and len(value) == 2 and all(_number(x) for x in value)):
        raise error(fld, f"must be [min, max] (two numbers), got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if lo > hi:
        raise error(fld, f"has min {lo} above max {hi}")
    return lo, hi


def check_max_input_size(data: dict, dims: int, error: ErrorFactory) -> tuple[int, ...] | None:
    value = data.get("max_input_size")
    if value is None:
        return None
    ok = isinstance(value, list) and len(value) == dims
    ok = ok and all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in value)
    if not ok:
        raise error(
            "max_input_size", f"must be null or {dims} positive integers (x, y[, z]), got {value!r}"
        )
    return tuple(value)


def check_plausibility(data: dict, task: str, label_names: set[str], error: ErrorFactory) -> dict:
    """The validated ``plausibility`` object (empty when the card has none)."""
    p = data.get("plausibility") or {}
    if not isinstance(p, dict):
        raise error("plausibility", "must be a JSON object")
    unknown = sorted(set(p) - set(PLAUSIBILITY_KEYS))
    if unknown:
        raise error(
            "plausibility", f"has unknown keys {unknown}; known: {', '.join(PLAUSIBILITY_KEYS)}"
        )
    out: dict[str, Any] = {}
    vols = p.get("volume_ml")
    if vols is not None:
        if not isinstance(vols, dict):
            raise error("plausibility.volume_ml", "must map label names to [min, max] in mL")
        if task != "segmentation":
            raise error("plausibility.volume_ml", "only a segmentation model has volumes")
        for name, rng in vols.items():
            if name not in label_names:
                raise error(f"plausibility.volume_ml.{name}", "is not one of the card's labels")
            _range(rng, f"plausibility.volume_ml.{name}", error)
        out["volume_ml"] = {k: [float(x) for x in v] for k, v in vols.items()}
    if "max_findings" in p:
        n = p["max_findings"]
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise error("plausibility.max_findings", f"must be a non-negative integer, got {n!r}")
        out["max_findings"] = n
    if "max_finding_mm" in p:
        mm = p["max_finding_mm"]
        if not _number(mm) or mm <= 0:
            raise error("plausibility.max_finding_mm", f"must be a positive number, got {mm!r}")
        out["max_finding_mm"] = float(mm)
    if "finding_labels" in p:
        names = p["finding_labels"]
        if not isinstance(names, list) or not all(n in label_names for n in names):
            raise error("plausibility.finding_labels", "must be a list of the card's label names")
        out["finding_labels"] = list(names)
    if "measured_on" in p:
        out["measured_on"] = _note(p["measured_on"], "plausibility.measured_on", error)
    return out


def _note(value: Any, fld: str, error: ErrorFactory) -> str:
    if not isinstance(value, str) or len(value) > 500 or any(ord(c) < 32 for c in value):
        raise error(fld, "must be one line of plain text (at most 500 characters)")
    return value


def check_ood(data: dict, task: str, error: ErrorFactory) -> dict:
    """The validated ``ood`` object: which score the engine computes and its expected range
    (and, for ``input_histogram``, the reference histogram it compares the input with)."""
    o = data.get("ood") or {}
    if not isinstance(o, dict):
        raise error("ood", "must be a JSON object")
    if not o:
        return {}
    score = o.get("score")
    if score not in OOD_SCORES:
        raise error("ood.score", f"is {score!r}; expected one of {', '.join(OOD_SCORES)}")
    if task not in OOD_SCORES[score]:
        raise error("ood.score", f"{score!r} is not computed for a {task} model")
    unknown = sorted(set(o) - set(OOD_KEYS))
    if unknown:
        raise error("ood", f"has unknown keys {unknown}; known: {', '.join(OOD_KEYS)}")
    lo, hi = _range(o.get("range"), "ood.range", error)
    out: dict[str, Any] = {"score": score, "range": [lo, hi]}
    if score == "input_histogram":
        network = data.get("network")
        arch = network.get("architecture", "") if isinstance(network, dict) else ""
        if str(arch).startswith("nnunet."):
            raise error(
                "ood.score",
                "'input_histogram' is not computed for an nnU-Net model (its preprocessing"
                " runs inside nnU-Net's predictor)",
            )
        if not 0.0 <= lo <= hi <= 1.0:
            raise error(
                "ood.range",
                f"is [{lo:g}, {hi:g}]; a histogram intersection lies within [0, 1]",
            )
        out["reference"] = _reference(o.get("reference"), error)
    elif "reference" in o:
        raise error("ood.reference", f"is only read for 'input_histogram', not {score!r}")
    if "measured_on" in o:
        out["measured_on"] = _note(o["measured_on"], "ood.measured_on", error)
    return out


def _reference(value: Any, error: ErrorFactory) -> dict[str, Any]:
    """The validated reference histogram of ``input_histogram``: its value range and its
    bins' fractions (non-negative, summing to 1 within 1 %: rounded fractions), kept as
    written so that the card round-trips; the score normalises both histograms."""
    fld = "ood.reference"
    if not isinstance(value, dict):
        raise error(fld, 'must be a JSON object {"range": [min, max], "histogram": [...]}')
    unknown = sorted(set(value) - {"range", "histogram"})
    if unknown:
        raise error(fld, f"has unknown keys {unknown}; known: range, histogram")
    lo, hi = _range(value.get("range"), f"{fld}.range", error)
    if not lo < hi:
        raise error(f"{fld}.range", f"is [{lo:g}, {hi:g}]; min must be below max")
    h = value.get("histogram")
    fewest, most = HISTOGRAM_BINS
    if not isinstance(h, list) or not fewest <= len(h) <= most:
        got = f"{len(h)} bins" if isinstance(h, list) else repr(h)[:40]
        raise error(f"{fld}.histogram", f"must be a list of {fewest}-{most} fractions, got {got}")
    if not all(_number(v) and v >= 0 for v in h):
        raise error(f"{fld}.histogram", "must hold finite non-negative numbers only")
    total = float(sum(h))
    if abs(total - 1.0) > 0.01:
        raise error(
            f"{fld}.histogram", f"sums to {total:.4g}; the fractions of a histogram sum to 1"
        )
    return {"range": [lo, hi], "histogram": [float(v) for v in h]}
