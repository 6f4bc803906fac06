"""Microsoft Teams: Adaptive Cards for every view (``cards``), delivery through Workflows
webhooks (``webhook``), and the Teams bot on the Teams SDK for Python (``microsoft-teams-apps``):
the ``/api/messages`` endpoint and its authentication, the listeners, the Bot Connector client,
conversation references for proactive messages, the bot's notifier and the app package."""

import warnings

from microsoft_teams.common import ExperimentalWarning

# Importing the SDK's ``apps`` package announces a preview feature (HTML widgets) that kpibot
# does not use; the warning would be noise in the server's log and an error in the tests.
warnings.filterwarnings("ignore", category=ExperimentalWarning, module="microsoft_teams")
