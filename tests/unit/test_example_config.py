"""configs/fleetd.example.toml documents every setting at its built-in default.

If a setting is added to, renamed in or removed from dispatcher/config.py, or a default
changes, these tests fail until the example is updated, so the example cannot drift.
"""

from __future__ import annotations

import os
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from dispatcher.config import (
    FacilitySettings,
    MapSettings,
    PlaceSettings,
    Settings,
    builtin_facilities,
    load_settings,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "configs" / "fleetd.example.toml"

SECTIONS = [name for name in Settings.model_fields if name != "facilities"]


@pytest.fixture(autouse=True)
def _no_fleetd_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own FLEETD_* variables must not leak into what is compared."""
    for name in list(os.environ):
        if name.startswith("FLEETD_"):
            monkeypatch.delenv(name)


def _raw() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))


def _section_model(name: str) -> type[BaseModel]:
    annotation = Settings.model_fields[name].annotation
    assert isinstance(annotation, type)
    assert issubclass(annotation, BaseModel)
    return annotation


def _commented_keys(section: str) -> set[str]:
    """Keys written as ``# key = ...`` inside ``[section]`` of the example."""
    text = EXAMPLE.read_text(encoding="utf-8")
    match = re.search(rf"^\[{section}\]\n(.*?)(?=^\[)", text, re.S | re.M)
    assert match, f"[{section}] not found in the example"
    return set(re.findall(r"^#\s*([a-z_]+)\s*=", match.group(1), re.M))


class TestExampleMatchesDefaults:
    def test_the_example_loads_without_error(self) -> None:
        """The example is a valid configuration as it stands."""
        load_settings(EXAMPLE)

    @pytest.mark.parametrize("section", SECTIONS)
    def test_each_section_equals_the_built_in_defaults(self, section: str) -> None:
        """Every value in the example is the default the code would use without a file."""
        assert getattr(load_settings(EXAMPLE), section) == getattr(Settings(), section)

    @pytest.mark.parametrize("section", SECTIONS)
    def test_each_section_names_every_setting(self, section: str) -> None:
        """Every setting appears; one without a default value (None) appears commented out."""
        fields = _section_model(section).model_fields
        written = set(_raw().get(section, {}))
        commented = _commented_keys(section)
        unset_by_default = {k for k, f in fields.items() if f.default is None}
        assert written - set(fields) == set(), "keys the code does not know"
        assert set(fields) - unset_by_default <= written, "settings missing from the example"
        assert unset_by_default <= commented, "optional settings not shown commented out"
        assert unset_by_default.isdisjoint(written), "a None default cannot be written in TOML"

    def test_no_section_is_missing_or_extra(self) -> None:
        """The example has exactly the sections Settings has."""
        assert set(_raw()) == set(Settings.model_fields)


class TestExampleFacilities:
    def test_facilities_are_the_demo_campus_verbatim(self) -> None:
        """The [[facilities]] block is exactly geo/maps/demo-campus.toml."""
        shipped = tomllib.loads(
            resources.files("geo").joinpath("maps/demo-campus.toml").read_text(encoding="utf-8")
        )
        assert _raw()["facilities"] == shipped["facilities"]

    def test_facilities_equal_the_built_in_fallback(self) -> None:
        """Configuring the example's facilities changes nothing against having none."""
        settings = load_settings(EXAMPLE)
        assert settings.facilities == builtin_facilities()
        assert settings.effective_facilities == Settings().effective_facilities
        assert settings.default_facility == Settings().default_facility

    @pytest.mark.parametrize(
        ("model", "table"),
        [
            (FacilitySettings, lambda raw: raw["facilities"][0]),
            (MapSettings, lambda raw: raw["facilities"][0]["maps"][0]),
            (PlaceSettings, lambda raw: raw["facilities"][0]["places"][0]),
        ],
    )
    def test_facility_tables_show_every_field(self, model: type[BaseModel], table: Any) -> None:
        """The facility, map and place examples show every field the models accept."""
        assert set(table(_raw())) == set(model.model_fields)
