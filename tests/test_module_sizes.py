"""Issue 10: no module of the program over about 400 lines without a reason in its first line."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("radlens_core", "viewer", "inference", "phantoms", "demo_models")
LIMIT = 400


def test_long_modules_say_why_in_their_first_line():
    unexplained = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            lines = path.read_text(encoding="utf-8").splitlines()
            if len(lines) <= LIMIT:
                continue
            first = lines[0].lower() if lines else ""
            if not any(word in first for word in ("lines", "long")):
                unexplained.append(f"{path.relative_to(ROOT)} ({len(lines)} lines): {lines[0]}")
    assert not unexplained, "\n".join(unexplained)
