"""The host-free MGLD-VSR algorithm: flow/occlusion, schedule, guidance, tiling, sampling, colour fix.

Tensors in, tensors out; no ComfyUI import anywhere below this package.
"""
