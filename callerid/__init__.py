"""callerid-bulk core: bulk verification of caller IDs via Plivo's Verified Caller ID API.

Importable and testable without Prefect; `flows/` and `tasks/` wrap it.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
