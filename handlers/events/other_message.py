"""Every other message event in the channels kpibot is in: none of its business. Handled (by
doing nothing) so that Bolt does not warn about each one."""

from __future__ import annotations


def other_message() -> None:
    return None
