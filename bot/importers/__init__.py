"""Importers: CRM exports (CSV files today) mapped onto the canonical model by configuration
alone, written through ``bot.store.upsert`` so that importing the same files twice changes
nothing."""
