"""The live-tensor byte counter now lives in the pack (``pipeline/memory.py``), where the sampler
and decoder use it to size tiles at run time; this name is kept for scripts that import it here."""
import _common  # noqa: F401  (registers the package ``mgld_vsr``)

from mgld_vsr.pipeline.memory.estimate import LiveTensorBytes  # noqa: F401

__all__ = ["LiveTensorBytes"]
