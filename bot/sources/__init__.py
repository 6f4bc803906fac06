"""Sources ``kpibot sync`` pulls into the store: Salesforce, HubSpot, Pipedrive, any SQL
database, and the CSV exports of ``import.csv``. Each connector turns its records into rows of
text cells; ``bot.importers.csv_import.RecordImport`` validates and upserts them, so that every
source keeps the CSV import's guarantees."""
