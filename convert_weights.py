#!/usr/bin/env python3
"""Convert official MGLD-VSR weights to per-component .safetensors: ``python convert_weights.py FILES... --out DIR``."""
import sys

from standalone import load_pack

if __name__ == "__main__":
    load_pack()
    from mgld_vsr.models.convert import main

    sys.exit(main())
