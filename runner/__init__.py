"""The headless runner: ComfyUI workflow files run without a ComfyUI server."""
