"""The ``kpibot`` command's entry point: ``bot.cli.main``, its modules imported with CPython's
cyclic garbage collector off.

Importing the command line creates a few hundred thousand objects (modules, classes,
functions, pandas', SQLAlchemy's and pydantic's tables) that live as long as the process.
With the collector on, the allocations trigger full collections in the middle of the imports,
each walking every object made so far and finding next to nothing to free: about a sixth of
``kpibot serve``'s start (docs/decisions.md, "A serving process's start pays only for what it
serves"). So the collector is off while ``bot.cli`` is imported; what the imports made is then
frozen (``gc.freeze``: left out of every later collection, which these objects would survive
anyway) and the collector is turned back on before any command runs. The few cycles the
imports left as garbage (about two thousand objects) stay allocated.

The import below is inside the function because turning the collector off before it is this
module's whole purpose: importing ``bot.launch`` does nothing."""

import gc


def main() -> None:
    gc.disable()
    try:
        from bot.cli import main as command_line
    finally:
        gc.freeze()
        gc.enable()
    command_line()
