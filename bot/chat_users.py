"""Chat users matched to their emails, cached in the store (``chat_users``) so that answering a
question does not ask the chat platform every time: Slack users by their user id, Teams users
by their Entra (AAD) object id."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.store.chat_models import ChatUser, from_db, to_db
from bot.store.database import transaction

# People change email rarely; a day keeps the cache fresh enough without calling out often.
CACHE_FOR = timedelta(days=1)


class Unknown:
    """No fresh entry: look the user up."""


UNKNOWN = Unknown()


def cached_email(
    sessions: sessionmaker[Session], user_id: str, now: datetime
) -> str | Unknown | None:
    """The user's email as last looked up (None: they have none), or ``UNKNOWN``."""
    with sessions() as session:
        row = session.get(ChatUser, user_id)
        if row is not None and now - from_db(row.looked_up_at) < CACHE_FOR:
            return row.email
    return UNKNOWN


def cached_user(sessions: sessionmaker[Session], email: str, now: datetime) -> str | None:
    """The user id last seen with this email, if fresh."""
    with sessions() as session:
        row = session.scalars(select(ChatUser).where(ChatUser.email == email)).first()
        if row is not None and now - from_db(row.looked_up_at) < CACHE_FOR:
            return row.user_id
    return None


def remember(
    sessions: sessionmaker[Session], user_id: str, email: str | None, now: datetime
) -> None:
    with transaction(sessions) as session:
        row = session.get(ChatUser, user_id)
        if row is None:
            session.add(ChatUser(user_id=user_id, email=email, looked_up_at=to_db(now)))
        else:
            row.email, row.looked_up_at = email, to_db(now)
