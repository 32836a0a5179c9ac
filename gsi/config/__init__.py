"""Configuration: schemas (:mod:`gsi.config.schemas`), their registration with Hydra
(:mod:`gsi.config.registry`, one explicit :func:`register` call) and start-up validation
(:mod:`gsi.config.validation`). Only the entry points (pipeline, cli, launch) import it.
"""

from gsi.config.registry import register, register_configs, toy_model_path
from gsi.config.schemas import *  # noqa: F401,F403  (the schema dataclasses, ASSETS)
from gsi.config.schemas import ASSETS, Config
from gsi.config.validation import MIN_TEMPERATURE, MIN_TOP_P, validate
from gsi.errors import ConfigError  # noqa: F401  (re-exported for callers of validate)

__all__ = ["ASSETS", "Config", "ConfigError", "MIN_TEMPERATURE", "MIN_TOP_P", "register", "register_configs",
           "toy_model_path", "validate"]
