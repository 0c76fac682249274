"""Motion: optical flow, occlusion, scene cuts, warping error and frame interpolation."""
