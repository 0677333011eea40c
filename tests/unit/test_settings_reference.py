"""The settings reference in docs/ is what the code says, and says something for every field."""

from __future__ import annotations

from pathlib import Path

from bridgescale.commands.settings import SECTIONS, reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def test_the_reference_in_docs_is_the_commands_output() -> None:
    assert DOC.read_text() == reference(), "run: bridgescale settings > docs/settings.md"


def test_every_setting_is_described() -> None:
    undescribed = [
        f"{settings.__name__}.{name}"
        for _, settings, _ in SECTIONS
        for name, field in settings.model_fields.items()
        if not field.description
    ]
    assert undescribed == []
