"""Menus, tool bar and shortcuts of the main window, built from one table of QActions.

``build`` answers a ``WindowControls`` (the actions and the widgets rebuilt per series); it
sets nothing on the window. The Help > Shortcuts dialog lists the same actions, so what it
shows is what is bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QLabel,
    QMenu,
    QSpinBox,
    QToolBar,
    QWidget,
)

from viewer.study.facts import frame_time_ms, has_patient_orientation
from viewer.ui.help import ShortcutsDialog
from viewer.ui.planes import PLANES
from viewer.ui.slab import SLAB_MODES, Slab
from viewer.ui.theme import icon

if TYPE_CHECKING:
    from viewer.ui.feature import WindowServices
    from viewer.ui.main_window import MainWindow

MODE_KEYS = {"crosshair": "Q", "window": "W", "zoom": "Z", "pan": "P"}
PLANE_KEYS = {"axial": "A", "coronal": "C", "sagittal": "S"}
LAYOUT_KEYS = {"single": "Ctrl+1", "1x3": "Ctrl+2", "2x2": "Ctrl+3"}
#: the preset box's entry while the window shown is none of the presets
CUSTOM_WINDOW = "Custom"


def _action(
    w: MainWindow, text: str, slot, shortcut: str = "", icon_name: str = "", toggle: bool = False
) -> QAction:
    """A window-wide action; ``toggle`` actions are checkable and pass their state to ``slot``."""
    action = QAction(text, w)
    if shortcut:
        action.setShortcut(QKeySequence(shortcut))
        # Window-wide so keys work whichever panel has focus.
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    if icon_name:
        action.setIcon(icon(icon_name))
    if toggle:
        action.setCheckable(True)
        action.toggled.connect(slot)
    else:
        action.triggered.connect(lambda *_: slot())
    w.addAction(action)
    return action


@dataclass
class WindowControls:
    """What ``build`` made: named actions, and the menus and widgets refreshed per series."""

    actions: dict[str, QAction]
    recent_menu: QMenu
    panels_menu: QMenu
    presets_menu: QMenu
    toolbar: QToolBar
    plane_combo: QComboBox
    preset_combo: QComboBox
    fps_spin: QSpinBox
    slab_combo: QComboBox
    slab_spin: QDoubleSpinBox
    dialogs: dict[str, QWidget] = field(default_factory=dict)


def build(w: MainWindow, services: WindowServices) -> WindowControls:
    a = services.actions
    area, state = w.area, w.state

    # ---- File ----------------------------------------------------------------------------
    def open_folder() -> None:
        folder = QFileDialog.getExistingDirectory(w, "Open a DICOM folder")
        if folder:
            w.open_path(folder)

    def open_file() -> None:
        path, _ = QFileDialog.getOpenFileName(
            w, "Open an image file", "", "Images (*.nii *.nii.gz *.nrrd *.nhdr *.mha *.mhd)"
        )
        if path:
            w.open_path(path)

    a["open"] = _action(w, "&Open folder…", open_folder, "Ctrl+O", "open")
    a["open_file"] = _action(w, "Open &image file…", open_file, "Ctrl+Shift+O")
    a["demo"] = _action(w, "Open &demo study", w.open_demo, "Ctrl+D")
    a["quit"] = _action(w, "&Quit", w.close, "Ctrl+Q")
    menu = services.menu("&File")
    menu.addActions([a["open"], a["open_file"], a["demo"]])
    recent_menu = menu.addMenu("Open &recent")
    menu.addSeparator()
    menu.addAction(a["quit"])

    # ---- View ----------------------------------------------------------------------------
    view = services.menu("&View")
    layouts = QActionGroup(w)
    for name, key in LAYOUT_KEYS.items():
        act = _action(w, f"Layout {name}", partial(area.set_layout, name), key, f"layout_{name}")
        act.setCheckable(True)
        layouts.addAction(act)
        view.addAction(act)
        a[f"layout_{name}"] = act
    area.layout_changed.connect(lambda n: a[f"layout_{n}"].setChecked(True))
    view.addSeparator()
    planes = QActionGroup(w)
    for plane in PLANES:
        act = _action(
            w, plane.capitalize(), partial(area.set_active_plane, plane), PLANE_KEYS[plane]
        )
        act.setCheckable(True)
        planes.addAction(act)
        view.addAction(act)
        a[f"plane_{plane}"] = act
    a["plane_axial"].setChecked(True)
    area.active_plane_changed.connect(lambda p: a[f"plane_{p}"].setChecked(True))
    view.addSeparator()
    a["text"] = _action(w, "Show image &text", area.set_text_visible, "O", toggle=True)
    a["text"].setChecked(bool(w.settings.get("view/show_text", True)))
    a["text"].toggled.connect(lambda v: w.settings.set("view/show_text", v))
    a["crosshair"] = _action(w, "Show cross&hair", area.set_crosshair_visible, "X", toggle=True)
    a["crosshair"].setChecked(True)
    a["fit"] = _action(w, "&Fit to window", area.fit_all, "F", "fit")

    def reset() -> None:
        state.reset_window()
        state.set_invert(False)
        a["invert"].setChecked(False)
        area.fit_all()

    a["invert"] = _action(w, "&Invert", state.set_invert, "I", "invert", toggle=True)
    a["reset"] = _action(w, "&Reset window and zoom", reset, "Ctrl+R", "reset")
    a["cine"] = _action(w, "&Cine play/stop", area.set_cine, "Space", "play", toggle=True)
    a["reset_oblique"] = _action(w, "Reset &oblique planes", state.reset_oblique, "Ctrl+Shift+X")
    a["reset_oblique"].setToolTip(
        "Ctrl+drag in crosshair mode turns the planes; this returns them to orthogonal"
    )
    view.addActions([a["text"], a["crosshair"], a["fit"], a["invert"], a["reset"], a["cine"]])
    view.addAction(a["reset_oblique"])
    # Every dock joins it once the features have added theirs (MainWindow does that).
    panels_menu = view.addMenu("&Panels")

    # ---- Window presets (rebuilt per series) ---------------------------------------------
    presets_menu = services.menu("&Window")

    # ---- Left-button modes ---------------------------------------------------------------
    modes = QActionGroup(w)
    for mode, key in MODE_KEYS.items():
        act = _action(w, f"{mode.capitalize()} mode", partial(area.set_left_mode, mode), key, mode)
        act.setCheckable(True)
        act.setToolTip(f"Left button: {mode} ({key})")
        modes.addAction(act)
        a[f"mode_{mode}"] = act
    a["mode_crosshair"].setChecked(True)

    # ---- Help ----------------------------------------------------------------------------
    help_menu = services.menu("&Help")
    dialogs: dict[str, QWidget] = {}
    a["shortcuts"] = _action(
        w, "&Shortcuts…", lambda: dialogs.update(shortcuts=show_shortcuts(w)), "F1"
    )
    a["problems"] = _action(w, "&Problems with the last folder…", w.show_problems)
    a["problems"].setEnabled(False)
    help_menu.addActions([a["shortcuts"], a["problems"]])

    # ---- Tool bar ------------------------------------------------------------------------
    bar = QToolBar("Main", w)
    bar.setObjectName("main_toolbar")
    bar.addAction(a["open"])
    bar.addSeparator()
    for name in LAYOUT_KEYS:
        bar.addAction(a[f"layout_{name}"])
    plane_combo = QComboBox(bar)
    plane_combo.addItems([p.capitalize() for p in PLANES])
    plane_combo.setToolTip("Plane shown in the single layout (A / C / S)")
    plane_combo.activated.connect(lambda i: area.set_active_plane(PLANES[i]))
    area.active_plane_changed.connect(lambda p: plane_combo.setCurrentIndex(PLANES.index(p)))
    bar.addWidget(plane_combo)
    bar.addSeparator()
    for mode in MODE_KEYS:
        bar.addAction(a[f"mode_{mode}"])
    bar.addSeparator()
    preset_combo = QComboBox(bar)
    preset_combo.setMinimumContentsLength(14)
    preset_combo.setToolTip("Window/level preset")
    preset_combo.activated.connect(lambda i: _apply_preset(w, preset_combo.itemText(i)))
    bar.addWidget(preset_combo)
    bar.addActions([a["invert"], a["fit"], a["reset"]])
    bar.addSeparator()
    bar.addAction(a["cine"])
    fps_spin = QSpinBox(bar)
    fps_spin.setRange(1, 60)
    fps_spin.setValue(10)
    fps_spin.setSuffix(" fps")
    fps_spin.setToolTip("Cine speed")
    fps_spin.valueChanged.connect(lambda v: area.set_cine(area.cine.isActive(), v))
    bar.addWidget(fps_spin)
    bar.addSeparator()
    slab_combo = QComboBox(bar)
    slab_combo.setObjectName("slab_mode")
    slab_combo.addItems(list(SLAB_MODES.values()))
    slab_combo.setToolTip("Thick slab: maximum (MIP), minimum (MinIP) or mean over a thickness")
    slab_spin = QDoubleSpinBox(bar)
    slab_spin.setObjectName("slab_thickness")
    slab_spin.setRange(0.5, 500.0)
    slab_spin.setDecimals(1)
    slab_spin.setValue(Slab().thickness_mm)
    slab_spin.setSuffix(" mm")
    slab_spin.setToolTip("Slab thickness")

    def slab_chosen(*_: object) -> None:
        mode = list(SLAB_MODES)[slab_combo.currentIndex()]
        state.set_slab(Slab(mode, float(slab_spin.value())))

    slab_combo.currentIndexChanged.connect(slab_chosen)
    slab_spin.valueChanged.connect(slab_chosen)
    bar.addWidget(slab_combo)
    bar.addWidget(slab_spin)
    bar.addWidget(QLabel("  "))
    services.add_toolbar("main", bar)
    controls = WindowControls(
        a,
        recent_menu,
        panels_menu,
        presets_menu,
        bar,
        plane_combo,
        preset_combo,
        fps_spin,
        slab_combo,
        slab_spin,
    )
    controls.dialogs = dialogs
    refresh_recent(w, controls)
    refresh_presets(w, controls)
    state.volume_changed.connect(lambda *_: refresh_planes(w, controls))
    state.window_changed.connect(lambda *_: sync_preset(w, controls))
    refresh_planes(w, controls)
    return controls


def _apply_preset(w: MainWindow, name: str) -> None:
    w.state.apply_preset(name)


def refresh_presets(w: MainWindow, controls: WindowControls) -> None:
    """Rebuild the Window menu and combo for the open series (file windows + CT presets)."""
    presets = w.state.window_presets()
    menu = controls.presets_menu
    for act in menu.actions():
        w.removeAction(act)
        act.deleteLater()
    menu.clear()
    controls.preset_combo.clear()
    rgb = w.state.is_rgb
    for i, name in enumerate(presets):
        key = str(i + 1) if i < 9 else ""
        c, width = presets[name]
        act = _action(w, f"{name}  (W {width:g} / L {c:g})", partial(_apply_preset, w, name), key)
        act.setEnabled(not rgb)
        menu.addAction(act)
        controls.preset_combo.addItem(name)
    if presets:
        controls.preset_combo.addItem(CUSTOM_WINDOW)
    menu.setEnabled(bool(presets) and not rgb)
    controls.preset_combo.setEnabled(bool(presets) and not rgb)
    sync_preset(w, controls)


def sync_preset(w: MainWindow, controls: WindowControls) -> None:
    """Show in the preset box the window actually shown: its preset's name, else "Custom"."""
    combo = controls.preset_combo
    if combo.count() == 0:
        return
    name = w.state.window_preset_name() or CUSTOM_WINDOW
    index = combo.findText(name)
    if index >= 0 and index != combo.currentIndex():
        combo.blockSignals(True)
        combo.setCurrentIndex(index)
        combo.blockSignals(False)


def refresh_planes(w: MainWindow, controls: WindowControls) -> None:
    """Plane, MPR layout and cine controls only for volumes: a 2D image (z = 1) has one plane
    and one slice."""
    volume = w.state.volume
    stack = volume is None or not volume.is_2d
    oriented = volume is None or has_patient_orientation(volume)
    mpr = stack and oriented
    for key in ("layout_1x3", "layout_2x2", "plane_coronal", "plane_sagittal", "reset_oblique"):
        controls.actions[key].setEnabled(mpr)
    controls.actions["cine"].setEnabled(stack)
    controls.plane_combo.setEnabled(mpr)
    controls.fps_spin.setEnabled(stack)
    slabs = mpr and (volume is None or not volume.is_rgb)
    controls.slab_combo.setEnabled(slabs)
    controls.slab_spin.setEnabled(slabs)
    # Without a patient orientation the one plane is the frames as stored, not "Axial".
    first = "Axial" if oriented else ("Frames" if stack else "Image")
    controls.plane_combo.setItemText(0, first)
    controls.actions["plane_axial"].setText(first)
    if not stack:
        tip = "A 2D image has one plane: coronal, sagittal and MPR layouts need a volume"
    elif not oriented:
        tip = (
            "These frames have no patient orientation (ultrasound, secondary capture, a "
            "projection stack): they are shown as stored; other planes need a volume"
        )
    else:
        tip = "Plane shown in the single layout (A / C / S)"
    controls.plane_combo.setToolTip(tip)
    ms = frame_time_ms(volume) if volume is not None else None
    if ms:
        # Cine plays at the rate the frames were acquired.
        controls.fps_spin.setValue(int(min(max(round(1000.0 / ms), 1), 60)))


def refresh_recent(w: MainWindow, controls: WindowControls) -> None:
    menu = controls.recent_menu
    menu.clear()
    recent = w.settings.recent_folders()
    for path in recent:
        menu.addAction(path, partial(w.open_path, path))
    menu.setEnabled(bool(recent))


def shortcut_table(w: MainWindow) -> list[tuple[str, str]]:
    """(shortcut, description) for every action of the window that has a shortcut."""
    rows = []
    for act in w.actions():
        seq = act.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        if seq:
            rows.append((seq, act.text().replace("&", "").replace("…", "")))
    for act in w.annotation_bar.slots.values():
        rows.append((str(act.data()), f"{act.text()} tool"))
    return rows


def show_shortcuts(w: MainWindow) -> ShortcutsDialog:
    dialog = ShortcutsDialog(shortcut_table(w), w)
    dialog.show()
    return dialog
