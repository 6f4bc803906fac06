"""What ``kpibot sync`` shows while it reads: on a terminal, a progress bar per object sized by
the total the CRM reports at its first page (Salesforce's ``totalSize``, HubSpot's search
``total``), or a running count rewritten in place where it reports none (Pipedrive, SQL); in a
log, plain lines."""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

import click

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar  # what click.progressbar returns


class SyncProgress:
    """A ``bot.sources.service.Progress`` writing to ``out`` (a terminal or a log)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.terminal = out.isatty()
        self._bars: dict[str, ProgressBar[int]] = {}

    def __call__(self, name: str, fetched: int, total: int | None, done: bool) -> None:
        if self.terminal and total is not None:
            self._bar(name, fetched, total, done)
            return
        of = "" if total is None else f" of {total}"
        line = f"  {name}: {fetched}{of} fetched" + (", done" if done else "")
        if self.terminal:
            click.echo(f"\r{line}", nl=done, file=self.out)
        else:
            click.echo(line, file=self.out)

    def _bar(self, name: str, fetched: int, total: int, done: bool) -> None:
        bar = self._bars.get(name)
        if bar is None:
            bar = click.progressbar(
                length=total,
                label=f"  {name}",
                file=self.out,
                show_pos=True,
                show_percent=True,
                show_eta=False,
            )
            self._bars[name] = bar
        bar.update(fetched - bar.pos)
        if done:
            bar.render_finish()
