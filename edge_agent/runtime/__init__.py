"""Inference runtimes behind one small interface; see base.py and choose.py."""

from edge_agent.runtime.base import Runtime, RuntimeOptions
from edge_agent.runtime.choose import BACKENDS, open_runtime

__all__ = ["BACKENDS", "Runtime", "RuntimeOptions", "open_runtime"]
