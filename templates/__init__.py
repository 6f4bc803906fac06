"""Jinja2 templates (data, not code), installed as the package ``bot.templates`` and read
through it by ``bot.rendering.environment``: slack/ (Block Kit), text/ (terminal), config/."""
