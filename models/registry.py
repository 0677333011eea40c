"""Recommenders by name, as the `--recommender` flag and the backtest table spell them."""

from __future__ import annotations

from collections.abc import Callable

from bridgescale.models.autopilot import AutopilotWindowRecommender
from bridgescale.models.base import Recommender
from bridgescale.models.bridgescale import BridgescaleRecommender
from bridgescale.models.krr import KrrRecommender
from bridgescale.models.vpa import VpaRecommender

ORACLE = "oracle"
DEFAULT = "bridgescale"

_FACTORIES: dict[str, Callable[[], Recommender]] = {
    "bridgescale": BridgescaleRecommender,
    "vpa": VpaRecommender,
    "krr": KrrRecommender,
    "autopilot-window": AutopilotWindowRecommender,
}


def names() -> list[str]:
    """Every name the backtest accepts; `oracle` is scored but is not a recommender."""
    return [*_FACTORIES, ORACLE]


def create(name: str) -> Recommender:
    try:
        return _FACTORIES[name]()
    except KeyError:
        raise ValueError(f"recommender: unknown {name!r}, expected one of {names()}") from None
