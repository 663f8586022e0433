"""The engine's version: a leaf module, so that any stage can record it without importing the package."""

import functools
import hashlib
from pathlib import Path

__version__ = "0.1.0"


@functools.lru_cache(maxsize=1)
def engine_digest() -> str:
    """The engine's source (every .py and .j2 of the package): what was cached or remembered by other
    code (a changed query, rule or admission check) is never read by this code."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*")):
        if path.suffix in (".py", ".j2") and path.is_file():
            digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
