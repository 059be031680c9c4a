"""The terminal, through rich, without importing rich until something is printed.

Importing rich's console and tables costs more than the rest of `callerid --help` together, and
help needs neither (typer's help is plain here). `console` makes a fresh `Console` on each use,
so it reads the terminal's width (COLUMNS) when it prints, not when the module was imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


class LazyConsole:
    def get(self) -> Console:
        from rich.console import Console

        return Console()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


console = LazyConsole()
