"""Find a fixture set's weight file by what it holds (file names carry no meaning)."""
import functools
import pathlib

from safetensors import safe_open


@functools.lru_cache(maxsize=None)
def _keys(path: str) -> tuple[str, ...]:
    with safe_open(path, framework="pt") as f:
        return tuple(f.keys())


def weights_file_with_prefix(weights_dir, prefix: str) -> pathlib.Path:
    """The ``.safetensors`` file under ``weights_dir`` holding keys that start with ``prefix``."""
    for path in sorted(pathlib.Path(weights_dir).rglob("*.safetensors")):
        if any(k.startswith(prefix) for k in _keys(str(path))):
            return path
    raise FileNotFoundError(f"no weights file with keys starting {prefix!r} under {weights_dir}")
