"""Cascades: model stages chained by gates (a cheap gate passes clean parts, a later stage judges the rest).

The TOML is read by ``edge/config/cascade_spec.py``; ``stage.py`` is the :class:`Cascade` model stage; ``evaluate.py`` is
``eval --cascade`` (per-stage metrics, the gate's pass share, time against the last stage alone).
"""

from ..config.cascade_spec import CascadeSpec, StageSpec, load_spec
from .stage import Cascade, open_cascade

__all__ = ["Cascade", "CascadeSpec", "StageSpec", "load_spec", "open_cascade"]
