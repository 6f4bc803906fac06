"""The surface-neutral conversation core's pure parts: who may do what (``authorization``).

Nothing here knows Slack, Teams, the terminal, the store or the clock: a request, a viewer and
the KPI core's values come in, decisions come out. Every chat surface and the CLI use it.
"""
