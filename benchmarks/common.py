"""What every benchmark script shares (they run as `python benchmarks/NAME.py`, so this imports as `common`)."""

from __future__ import annotations

import json


def emit(digits: int = 5, **record: object) -> None:
    """Print one JSON record on a line, floats rounded to `digits`, flushed at once (run_all reads it live)."""
    print(json.dumps({k: round(v, digits) if isinstance(v, float) else v for k, v in record.items()}), flush=True)
