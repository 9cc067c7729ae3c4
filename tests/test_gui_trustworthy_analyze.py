"""Trustworthy Analyze in the viewer (issue 11): only admitted models are offered, none-fits is
explained, an explicit override is confirmed and marked everywhere, flags are never shown as
plain findings, a tampered package is never offered (pytest-qt)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QMainWindow, QMessageBox, QSplitter

from phantoms.chest import chest_ct
from radlens_core.admission import Admission
from radlens_core.results import Flag
from tests.analysis_fakes import CARD, FakeEngine, analysis_result, phantom_result
from viewer.labels.results import ResultStore
from viewer.study.volume import Volume
from viewer.ui.analysis import AnalysisController
from viewer.ui.analyze_feature import AnalyzeFeature
from viewer.ui.feature import WindowServices
from viewer.ui.model_offer import (
    ModelChoice,
    ModelOffer,
    admitted_offer,
    series_facts,
)
from viewer.ui.result_banner import IntendedUseBanner
from viewer.ui.slice_view import SliceView
from viewer.ui.state import ViewerState

pytestmark = pytest.mark.gui

BODY = "made for the CHEST; this image is of the EXTREMITY"
MODALITY = "made for MR; this series is CT"


@pytest.fixture(scope="module")
def phantom():
    return chest_ct((24, 48, 48), seed=5, n_nodules=1)


def _refusing(*cards_and_reasons) -> ModelOffer:
    return ModelOffer(
        tuple(ModelChoice(c, Admission(c.id, c.name, tuple(r))) for c, r in cards_and_reasons)
    )


class _Window(QMainWindow):
    def __init__(self, engine, store, offer: ModelOffer) -> None:
        super().__init__()
        self.state = ViewerState(self)
        split = QSplitter(self)
        self.views = {p: SliceView(self.state, p, split) for p in ("axial", "coronal")}
        self.setCentralWidget(split)
        self.services = WindowServices(self, self.state)
        self.analyze = AnalyzeFeature(
            self.services,
            controller=AnalysisController(engine_factory=engine, store=store),
            store=store,
            models=lambda v: offer,
        )
        self.banner = IntendedUseBanner(self.analyze, self)


def _window(qtbot, tmp_path, phantom, offer, answer=None, uid="1.2.3.11"):
    engine = FakeEngine(answer or phantom_result(phantom))
    win = _Window(engine, ResultStore(tmp_path / "results"), offer)
    qtbot.addWidget(win)
    win.show()
    vol = Volume(phantom.hu, spacing=phantom.spacing, modality="CT", series_uid=uid)
    win.state.set_volume(vol)
    assert win.analyze.wait_for_models()  # the offer is listed on a worker
    return win, engine


# ---- the facts of a series -------------------------------------------------------------------
def test_series_facts_read_modality_dims_body_part_and_uncalibrated_spacing():
    ct = Volume(np.zeros((4, 8, 8), np.int16), modality="CT", meta={"body_part": "chest"})
    facts = series_facts(ct)
    assert (facts.modality, facts.spatial_dims, facts.shape) == ("CT", 3, (4, 8, 8))
    assert facts.body_part == "CHEST" and facts.has_spacing
    # A DICOM radiograph without PixelSpacing/ImagerPixelSpacing: viewer.study warns so.
    cr = Volume(
        np.zeros((1, 8, 8), np.uint16),
        modality="CR",
        warnings=["no pixel spacing in the file: distances are in pixels, not mm"],
    )
    assert series_facts(cr).spatial_dims == 2 and not series_facts(cr).has_spacing
    png = Volume(np.zeros((1, 8, 8), np.uint8), meta={"format": "png"})
    assert not series_facts(png).has_spacing
    stated = Volume(np.zeros((1, 8, 8), np.uint8), meta={"pixel_spacing_calibrated": True})
    assert series_facts(stated).has_spacing


# ---- the model menu ----------------------------------------------------------------------------
def test_menu_offers_admitted_models_and_shows_the_others_disabled_with_their_reason(qtbot):
    from viewer.ui.panels.model_info import ModelMenu

    mr = replace(CARD, id="mr-seg", name="MR segmenter", modalities=("MR",))
    offer = ModelOffer(
        (
            ModelChoice(CARD, Admission(CARD.id, CARD.name)),
            ModelChoice(mr, Admission(mr.id, mr.name, (MODALITY,))),
        )
    )
    menu = ModelMenu()
    menu.set_offer(offer)
    assert menu.current() is CARD
    checkable = [a.text() for a in menu.actions() if a.isCheckable()]
    assert checkable == ["Fake segmenter 1.0.0"]
    (refused,) = menu.refused_actions()
    assert refused.text().startswith("MR segmenter") and not refused.isEnabled()
    assert MODALITY in refused.toolTip()
    assert [a.text() for a in menu.override_menu.actions()] == ["MR segmenter 1.0.0…"]
    with qtbot.waitSignal(menu.override_requested, timeout=1_000) as asked:
        menu.override_menu.actions()[0].trigger()
    assert asked.args[0] is mr


# ---- none fits ---------------------------------------------------------------------------------
def test_when_no_model_fits_analyze_says_so_and_lists_each_model_with_its_reason(
    qtbot, tmp_path, phantom
):
    mr = replace(CARD, id="mr-seg", name="MR segmenter", modalities=("MR",))
    offer = _refusing((CARD, [BODY]), (mr, [MODALITY]))
    win, engine = _window(qtbot, tmp_path, phantom, offer)
    assert win.analyze.menu.current() is None  # nothing checked: no fallback
    assert not win.analyze.analyze()
    assert not win.analyze.controller.is_running() and not engine.calls
    box = win.analyze.message_box
    assert isinstance(box, QMessageBox) and box.isVisible()
    text = box.text()
    assert text.startswith("No installed model fits this series (CT volume")
    assert f"Fake segmenter 1.0.0: {BODY}" in text and f"MR segmenter 1.0.0: {MODALITY}" in text
    assert "Run outside intended use" in text
    # The Findings dock says the same while the series has no results.
    assert win.analyze.findings.empty.text() == text and win.state.layers.names() == []


# ---- override ---------------------------------------------------------------------------------
def test_override_runs_after_confirmation_and_marks_the_result_everywhere(qtbot, tmp_path, phantom):
    offer = _refusing((CARD, [BODY]))
    win, engine = _window(qtbot, tmp_path, phantom, offer)
    # Cancel: nothing runs.
    win.analyze.menu.override_menu.actions()[0].trigger()
    box = win.analyze.override_box
    assert box.isVisible() and BODY in box.text() and "outside intended use" in box.text()
    box.button(QMessageBox.StandardButton.Cancel).click()
    assert not win.analyze.controller.is_running() and not engine.calls
    # Run anyway: runs, told to the engine, marked in every place it shows.
    win.analyze.menu.override_menu.actions()[0].trigger()
    run = next(b for b in win.analyze.override_box.buttons() if b.text() == "Run anyway")
    with qtbot.waitSignal(win.analyze.controller.analysis_finished, timeout=10_000) as done:
        run.click()
    assert engine.kwargs == [{"outside_intended_use": True}]
    rec = done.args[0].record
    assert rec.outside_intended_use
    names = win.state.layers.names()
    assert names and all("[outside intended use]" in n for n in names), names
    assert all("Outside intended use" in win.state.layers.get(n).note for n in names)
    top = win.analyze.findings.tree.topLevelItem(0)
    assert top.text(0).startswith("⚠ OUTSIDE INTENDED USE")
    assert win.analyze.findings.caveat_rows()[0].startswith("Outside intended use:")
    finding_rows = [top.child(i) for i in range(top.childCount()) if top.child(i).data(0, 257)]
    assert finding_rows and all(not r.icon(0).isNull() for r in finding_rows)
    assert all("Outside intended use" in r.toolTip(0) for r in finding_rows)
    win.banner.refresh()
    assert win.banner.isVisible() and "⚠ " in win.banner.text()
    assert "Outside intended use" in win.banner.text()
    assert "outside intended use" in win.analyze.last_message
    (stored,) = ResultStore(tmp_path / "results").load_all("1.2.3.11")
    assert stored.outside_intended_use


def test_a_pinned_model_that_does_not_fit_asks_before_the_default_analyze_runs_it(
    qtbot, tmp_path, phantom
):
    offer = _refusing((CARD, [BODY]))
    win, engine = _window(qtbot, tmp_path, phantom, offer)
    win.analyze.menu.choose(CARD)  # "Use for Analyze" on a model that does not fit
    assert not win.analyze.analyze()
    assert win.analyze.override_box.isVisible() and not engine.calls


# ---- flags -------------------------------------------------------------------------------------
def test_flagged_results_show_each_reason_and_never_look_like_plain_findings(
    qtbot, tmp_path, phantom
):
    base = phantom_result(phantom)
    flags = (
        Flag("volume_out_of_range", "lung 365 mL is outside the expected 1500–8000 mL"),
        Flag("out_of_distribution", "this image is unlike the model's validation data"),
    )
    answer = replace(base, run=replace(base.run, flags=flags, ood_score=0.2, ood_range=(0.6, 1)))
    win, _ = _window(qtbot, tmp_path, phantom, admitted_offer([CARD]), answer=answer)
    with qtbot.waitSignal(win.analyze.controller.analysis_finished, timeout=10_000):
        assert win.analyze.analyze()
    panel = win.analyze.findings
    assert panel.caveat_rows() == [f.message for f in flags]
    top = panel.tree.topLevelItem(0)
    assert top.text(0).startswith("⚠ FLAGGED")
    rows = [top.child(i) for i in range(top.childCount()) if top.child(i).data(0, 257)]
    assert rows and all(flags[0].message in r.toolTip(0) for r in rows)
    assert all(n.startswith("Fake segmenter [flagged]: ") for n in win.state.layers.names())
    win.banner.refresh()
    assert flags[0].message in win.banner.text() and flags[1].message in win.banner.text()
    # An unflagged run looks as before.
    win2, _ = _window(qtbot, tmp_path, phantom, admitted_offer([CARD]), uid="1.2.3.12")
    with qtbot.waitSignal(win2.analyze.controller.analysis_finished, timeout=10_000):
        win2.analyze.analyze()
    assert win2.analyze.findings.caveat_rows() == []
    assert "Fake segmenter: mask" in win2.state.layers.names()


# ---- the leg radiograph, in the real window with the installed models -----------------------------
def _leg_radiograph(path: Path) -> Path:
    from tests.dicom_factory import write_2d

    rng = np.random.default_rng(4)
    values = (rng.random((96, 48)) * 3000).astype(np.uint16)
    write_2d(path, values, modality="CR")
    import pydicom

    ds = pydicom.dcmread(path)
    ds.BodyPartExamined = "EXTREMITY"
    ds.SeriesDescription = "CR left leg"
    ds.save_as(path)
    return path


def test_leg_radiograph_is_not_analysed_by_default_and_the_override_marks_it(
    qtbot, tmp_path, monkeypatch
):
    from viewer.ui import analysis
    from viewer.ui.main_window import MainWindow

    answer = analysis_result(
        model_id="radlens-cxr-nodule-cls",
        task="classification",
        heat_map=np.full((96, 48), 0.5, np.float32),  # a 2D model answers in (y, x)
        probabilities={"normal": 0.0, "nodule": 1.0},
    )
    engine = FakeEngine(answer)
    monkeypatch.setattr(analysis, "_default_engine_factory", engine)
    path = _leg_radiograph(tmp_path / "leg.dcm")
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.series_loaded, timeout=15_000):
        window.open_path(path)
    qtbot.waitUntil(lambda: not window.tasks, timeout=10_000)
    assert window.state.volume.meta["body_part"] == "EXTREMITY"
    feature = window.analyze
    cxr = feature.offer.choice("radlens-cxr-nodule-cls")
    if cxr is None:
        pytest.skip("the shipped chest-radiograph classifier is not installed")
    assert not cxr.admitted and any("EXTREMITY" in r for r in cxr.reasons)
    assert feature.offer.best is None and feature.menu.current() is None
    feature.action.trigger()  # the default Analyze: no fallback to the chest classifier
    assert not feature.controller.is_running() and not engine.calls
    text = feature.message_box.text()
    assert text.startswith("No installed model fits this series (CR image")
    assert "body part EXTREMITY" in text
    assert f"{cxr.card.name} {cxr.card.version}: " in text
    for choice in feature.offer.choices:  # every installed model, with its reason
        assert f"{choice.card.name} {choice.card.version}: {'; '.join(choice.reasons)}" in text
    feature.message_box.close()
    # The explicit override, confirmed, runs it and marks the result.
    act = next(
        a for a in feature.menu.override_menu.actions() if a.text().startswith(cxr.card.name)
    )
    act.trigger()
    run = next(b for b in feature.override_box.buttons() if b.text() == "Run anyway")
    with qtbot.waitSignal(feature.controller.analysis_finished, timeout=10_000):
        run.click()
    assert engine.kwargs == [{"outside_intended_use": True}]
    assert feature.findings.tree.topLevelItem(0).text(0).startswith("⚠ OUTSIDE INTENDED USE")
    window.banner.refresh()
    assert "Outside intended use" in window.banner.text()
    window.close()


# ---- a tampered package ------------------------------------------------------------------------
def test_tampered_package_is_shown_refused_and_never_offered_in_analyze(qtbot):
    from radlens_core.paths import user_models_dir
    from tests.test_gui_models_train import by_id, write_package
    from viewer.ui.main_window import MainWindow

    write_package(user_models_dir(), "good-ct-seg")
    tampered = write_package(user_models_dir(), "tampered-ct-seg")
    (tampered / "model.safetensors").write_bytes(b"changed after publishing")
    window = MainWindow()
    qtbot.addWidget(window)
    panel = window.training.panel
    qtbot.waitUntil(lambda: "tampered-ct-seg" in by_id(panel), timeout=20_000)
    entry = by_id(panel)["tampered-ct-seg"]
    assert not entry.usable and entry.short_status == "✗ weights changed"
    panel.select("tampered-ct-seg")
    assert "Refused: Analyze never offers or runs this package." in panel.details.toPlainText()
    window.state.set_volume(Volume(np.zeros((8, 16, 16), np.int16), modality="CT"))
    with qtbot.waitSignal(panel.models_listed, timeout=20_000):
        panel.rescan()  # a listing while the series is open refreshes Analyze's menu too
    assert window.analyze.wait_for_models()  # Analyze lists its offer on a worker

    def every_entry(menu) -> list[str]:
        out = []
        for action in menu.actions():
            out.append(action.text())
            if action.menu() is not None:
                out += every_entry(action.menu())
        return out

    titles = every_entry(window.analyze.menu)
    assert "Test model good-ct-seg 0.3.0" in titles
    assert not [t for t in titles if "tampered-ct-seg" in t], titles
    assert window.analyze.offer.choice("tampered-ct-seg") is None
    window.close()


# ---- card text is plain text -------------------------------------------------------------------
def test_models_panel_shows_card_text_plainly_with_format_labels_origin_and_licence(qtbot):
    from PySide6.QtCore import Qt

    from radlens_core.paths import user_models_dir
    from tests.test_gui_models_train import listed_panel, write_package
    from viewer.ui.panels.model_info import ModelCardDialog

    link = '<a href="file:///etc/passwd">click here</a>'
    folder = write_package(
        user_models_dir(),
        "licensed-seg",
        intended_use=f"Research only. {link}",
        training={"data": "<b>bold claims</b>", "imported_from": "/media/usb/Dataset042"},
    )
    (folder / "LICENSE").write_text("CC BY-NC-SA 4.0\nNo clinical use.", encoding="utf-8")
    panel = listed_panel(qtbot)
    assert panel.select("licensed-seg")
    label = panel.details.text.label
    assert label.textFormat() == Qt.TextFormat.PlainText and not label.openExternalLinks()
    text = panel.details.toPlainText()
    assert link in text and "<b>bold claims</b>" in text  # shown as written, never rendered
    assert "Source format: radlens (RadLens package)" in text
    assert "Labels (1): 1 lung" in text
    assert "Imported from: /media/usb/Dataset042" in text and str(folder) in text
    assert "CC BY-NC-SA 4.0\nNo clinical use." in text
    # Nothing of the card reaches the rich-text part of the panel.
    assert "click here" not in panel.details.toHtml()
    dialog = ModelCardDialog(panel.selected().card)
    qtbot.addWidget(dialog)
    assert dialog.browser.label.textFormat() == Qt.TextFormat.PlainText
    assert link in dialog.browser.toPlainText()


def test_the_dicom_reader_states_whether_pixel_spacing_is_calibrated(tmp_path):
    """The loader says it in the volume's meta; the facts a card is checked against read it."""
    import pydicom

    from tests.dicom_factory import write_ct_series
    from viewer.study.facts import series_facts
    from viewer.study.scan import scan_folder
    from viewer.study.series import load_series

    write_ct_series(tmp_path / "ct")
    vol = load_series(scan_folder(tmp_path / "ct").series[0])
    assert vol.meta["pixel_spacing_calibrated"] is True and series_facts(vol).has_spacing
    for f in (tmp_path / "ct").iterdir():  # the same files without PixelSpacing
        ds = pydicom.dcmread(f)
        del ds.PixelSpacing
        ds.save_as(f)
    vol = load_series(scan_folder(tmp_path / "ct").series[0])
    assert vol.meta["pixel_spacing_calibrated"] is False and not series_facts(vol).has_spacing
