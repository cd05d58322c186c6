"""Training recipes as code (pytracking's way): one module per recipe, each defining ``RECIPE``.

A recipe is everything that makes a trained model: variant, data mix, augmentation, stages and their
schedules, and the seed. ``grm-train recipe NAME`` runs it (see ``grm_ros.training.recipe``); the ablation
flags (``--frozen-stem``, ``--tune-stem SCALE``, ``--stem-init random``, ``--division-loss W``,
``--variant NAME``) apply the ``Recipe.with_*`` modifiers, so an ablation keeps the recipe's data, stages
and budget.
"""

from __future__ import annotations

import importlib
import pkgutil

from grm_ros.training.recipe import Recipe


def list_recipes() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def get_recipe(name: str) -> Recipe:
    if name not in list_recipes():
        raise ValueError(f"unknown recipe {name!r}; known: {list_recipes()}")
    return importlib.import_module(f"{__name__}.{name}").RECIPE
