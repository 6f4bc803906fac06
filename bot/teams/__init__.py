"""Microsoft Teams: Adaptive Cards for every view (``cards``), delivery through Workflows
webhooks (``webhook``) and through the Teams bot (the rest of the package)."""
