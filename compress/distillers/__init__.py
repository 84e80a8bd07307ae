"""Distillation methods; importing this package registers them in beamc.registry.DISTILLERS."""

from beamc.registry import DISTILLERS
from beamc.compress.distillers.base import Distiller, ModelOut, NoneConfig, Taps
from beamc.compress.distillers import datafree, ikd, kdmse, rkd, selfkd  # noqa: F401  (registration)

DISTILLERS.add("none", Distiller)

__all__ = ["Distiller", "ModelOut", "NoneConfig", "Taps"]
