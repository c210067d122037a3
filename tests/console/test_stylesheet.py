"""The console's colours meet WCAG AA contrast (4.5:1 for text), read from the stylesheet
that ships; and its pages load nothing but the package's own files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dispatcher.console import STATIC_DIR
from dispatcher.console.render import console_templates_dir

CSS = (STATIC_DIR / "console.css").read_text()
COLOURS = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-f]{6});", CSS))
# (text, background) pairs the stylesheet puts together
PAIRS = [
    ("fg", "bg"),
    ("fg", "panel"),
    ("muted", "bg"),
    ("muted", "panel"),
    ("accent", "bg"),
    ("accent-fg", "accent"),
    ("danger-fg", "danger"),
    ("error-fg", "bg"),
    ("notice-fg", "notice-bg"),
    ("ok-fg", "ok-bg"),
    ("failing-fg", "failing-bg"),
    ("disabled-fg", "disabled-bg"),
    ("pending-fg", "pending-bg"),
    ("skipped-fg", "skipped-bg"),
]


def luminance(colour: str) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_contrast_formula() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


@pytest.mark.parametrize(("text", "background"), PAIRS)
def test_text_colours_have_aa_contrast(text: str, background: str) -> None:
    assert contrast(COLOURS[text], COLOURS[background]) >= 4.5, (text, background)


def test_every_badge_class_uses_the_checked_pairs() -> None:
    for rule in re.findall(r"\.(?:state|status)-[a-z]+[^{]*\{([^}]*)\}", CSS):
        used = re.findall(r"var\(--([a-z-]+)\)", rule)
        assert tuple(used) in PAIRS, rule


def test_templates_load_only_the_packages_files() -> None:
    for template in Path(console_templates_dir()).glob("*.html"):
        text = template.read_text()
        assert not re.search(r"(src|href)=\"(https?:)?//", text), template.name
        assert "<style" not in text and "<script>" not in text and " style=" not in text
