"""Who a chat user is: the config's ``access`` section (by user id or email) and the CRM's
reps (by email) turned into a ``conversation.authorization.Viewer``. What a viewer may see and
do is decided there, in ``authorize``, for every surface.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.delivery.notifier import TEAMS, destination_of, parse_destination
from bot.settings import Access, Settings
from conversation.authorization import Channel, Role, Viewer
from metrics.facts import Facts


def _find(keys: Mapping[str, object], user_id: str, email: str | None) -> object | None:
    folded = {k.casefold(): v for k, v in keys.items()}
    if user_id.casefold() in folded:
        return folded[user_id.casefold()]
    if email and email.casefold() in folded:
        return folded[email.casefold()]
    return None


def viewer_for(
    access: Access,
    user_id: str,
    email: str | None,
    reps_by_email: Mapping[str, str],
    team_of: Mapping[str, str | None],
) -> Viewer:
    """The ``Viewer`` for a Slack user. ``reps_by_email`` maps lower-case CRM emails to rep
    names; ``team_of`` maps rep names to their team."""
    rep = _find(access.reps, user_id, email)
    if rep is None and email:
        rep = reps_by_email.get(email.casefold())
    rep_name = None if rep is None else str(rep)
    admins = {a.casefold() for a in access.admins}
    if user_id.casefold() in admins or (email and email.casefold() in admins):
        return Viewer(user_id, Role.ADMIN, rep_name, team_of=team_of)
    teams = _find(access.managers, user_id, email)
    if teams:
        assert isinstance(teams, tuple)
        return Viewer(user_id, Role.MANAGER, rep_name, frozenset(teams), team_of=team_of)
    if rep_name is not None:
        return Viewer(user_id, Role.REP, rep_name, team_of=team_of)
    return Viewer(
        user_id, Role.UNKNOWN, team_of=team_of, sees_company=access.unknown_users == "company"
    )


def rep_teams(facts: Facts) -> dict[str, str | None]:
    """Rep name → their team, from the CRM."""
    reps = facts.reps
    return {
        str(name): (str(team) if isinstance(team, str) else None)
        for name, team in zip(reps["name"], reps["team"], strict=True)
    }


def reps_by_email(facts: Facts) -> dict[str, str]:
    """Lower-case CRM email → rep name."""
    reps = facts.reps
    return {
        str(email).casefold(): str(name)
        for name, email in zip(reps["name"], reps["email"], strict=True)
        if isinstance(email, str) and email
    }


def channel_audience(settings: Settings, channel_id: str, facts: Facts) -> Channel:
    """The channel ``channel_id`` (a destination such as ``C0LYON``, ``slack:C0LYON`` or
    ``teams:lyon``, or the name of a Teams conversation) as an audience:
    ``visibility.rep_figures``, and the team whose channel it is (``slack.team_channels``,
    ``teams.team_channels``), if any."""
    config = settings.config
    routes = [
        *config.slack.team_channels.items(),
        *(
            (name, (conversation, destination_of(TEAMS, conversation)))
            for name, conversation in config.teams.team_channels.items()
        ),
    ]
    where = parse_destination(channel_id)
    team = next(
        (name for name, channels in routes if where in map(parse_destination, channels)), None
    )
    return Channel(
        channel_id,
        settings.config.visibility.rep_figures,
        team,
        team_of=rep_teams(facts),
    )
