"""Compatibility: ``ModelSpec`` is public core API now (:mod:`serifu.modeling.spec`)."""

from serifu.modeling.spec import GENERATION_DEFAULTS, ModelSpec

__all__ = ["GENERATION_DEFAULTS", "ModelSpec"]
