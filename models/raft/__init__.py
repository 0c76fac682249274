"""RAFT optical flow (normal size, raft-things.pth) used by MGLD-VSR's motion guidance."""
from .raft import RAFT, RAFTConfig, convex_upsample, sintel_padding

__all__ = ["RAFT", "RAFTConfig", "convex_upsample", "sintel_padding"]
