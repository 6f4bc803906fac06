"""Delivery: the ``Notifier`` interface (send, update, reply in thread) and its Slack, Teams and
console implementations, the outbox and retries."""
