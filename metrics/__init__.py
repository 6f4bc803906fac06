"""The pure KPI core: definitions, periods, scopes, targets, evaluation, alert decisions and
question parsing.

Inputs in, values out. Nothing here reads a clock, the environment, a database or a network;
``as_of`` is always a parameter. Only pandas and the standard library are imported (enforced by
import-linter).
"""
