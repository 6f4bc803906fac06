"""The gettext catalogs of kpibot's words: ``<language>/LC_MESSAGES/kpibot.po`` (English and
French), read through the package by ``bot.formatting`` and shipped in the wheel."""
