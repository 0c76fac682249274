"""Neural networks of MGLD-VSR, written to load the official checkpoints unchanged.

One module per paper component; ``loader`` maps official checkpoint keys onto them.
Nothing here imports ComfyUI.
"""
