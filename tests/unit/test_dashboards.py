"""The Grafana dashboards are the ones grafana/generate.py makes, and well-formed Grafana 10
dashboards: unique uids and panel ids, a templated Prometheus data source on every panel and
target, panels inside the grid, every variable defined, and only metric names that bridgescale,
the node simulator (as cAdvisor, kube-state-metrics and DCGM) really export."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from bridgescale.localcluster.settings import find_project_root
from bridgescale.recommender.metrics import RecommenderMetrics
from bridgescale.simulator.metrics import FAMILIES
from bridgescale.updater.metrics import UpdaterMetrics

GRAFANA = find_project_root(Path(__file__)) / "grafana"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
BUILTINS = {"__rate_interval", "__interval", "__range"}
METRIC = re.compile(r"\b(?:bridgescale_|container_|kube_|DCGM_)\w+")
VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate", GRAFANA / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _checked_in() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in (GRAFANA / "dashboards").glob("*.json")}


def _exported() -> set[str]:
    """Every sample name the services' registries and the simulator's exporters can expose."""
    registry = CollectorRegistry()
    RecommenderMetrics(registry)
    UpdaterMetrics(registry)
    names = {sample.name for family in registry.collect() for sample in family.samples}
    for family in registry.collect():
        if family.type == "histogram":
            names |= {f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count")}
        names.add(family.name)
    return names | set(FAMILIES)


def test_the_checked_in_json_is_what_the_generator_makes() -> None:
    generator = _generator()
    made = generator.dashboards()
    assert set(made) == set(_checked_in())
    for name, board in made.items():
        assert generator.render(board) == (GRAFANA / "dashboards" / name).read_text(), name


def test_uids_and_titles_are_unique() -> None:
    boards = list(_checked_in().values())
    assert len(boards) >= 2
    assert len({b["uid"] for b in boards}) == len(boards)
    assert len({b["title"] for b in boards}) == len(boards)


@pytest.mark.parametrize("name", sorted(_checked_in()))
def test_a_dashboard_is_well_formed(name: str) -> None:
    board = _checked_in()[name]
    assert board["schemaVersion"] >= 38  # Grafana 10
    assert re.fullmatch(r"[a-z0-9-]{1,40}", board["uid"])
    variables = board["templating"]["list"]
    assert variables[0] == {**variables[0], "name": "datasource", "type": "datasource"}
    assert variables[0]["query"] == "prometheus"
    defined = {v["name"] for v in variables}
    for variable in variables[1:]:
        assert variable["datasource"] == DATASOURCE
        assert _used(variable["definition"]) <= defined - {variable["name"]}

    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        position = panel["gridPos"]
        assert position["x"] + position["w"] <= 24 and position["h"] > 0
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel["description"]
        assert panel["datasource"] == DATASOURCE
        targets = panel["targets"]
        assert targets, panel["title"]
        assert len({t["refId"] for t in targets}) == len(targets)
        for target in targets:
            assert target["datasource"] == DATASOURCE
            assert target["expr"].count("(") == target["expr"].count(")")
            assert _used(target["expr"]) <= defined | BUILTINS, target["expr"]
    _no_overlap(panels)


def _used(text: str) -> set[str]:
    return {a or b for a, b in VARIABLE.findall(text)}


def _no_overlap(panels: list[dict[str, Any]]) -> None:
    taken: set[tuple[int, int]] = set()
    for panel in panels:
        p = panel["gridPos"]
        cells = {
            (x, y) for x in range(p["x"], p["x"] + p["w"]) for y in range(p["y"], p["y"] + p["h"])
        }
        assert not cells & taken, panel["title"]
        taken |= cells


def test_queries_name_only_metrics_that_exist() -> None:
    exported = _exported()
    for board in _checked_in().values():
        texts = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
        texts += [v.get("definition", "") for v in board["templating"]["list"]]
        for text in texts:
            unknown = set(METRIC.findall(text)) - exported
            assert not unknown, (unknown, text)


def test_the_provisioning_files_point_at_a_prometheus_and_the_dashboards() -> None:
    datasources = yaml.safe_load(
        (GRAFANA / "provisioning/datasources/bridgescale.yaml").read_text()
    )
    assert [d["type"] for d in datasources["datasources"]] == ["prometheus"]
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/bridgescale.yaml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]
