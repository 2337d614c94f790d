"""Agent authentication: a Bearer token, looked up by its hash."""

from __future__ import annotations

from aiohttp import web

from contactcenter.api.errors import ApiError
from contactcenter.api.keys import CONNS
from contactcenter.api.parsing import CHALLENGE, bearer_token
from contactcenter.domain.agents import Agent
from contactcenter.domain.enums import Role
from contactcenter.services import agents


async def require_agent(
    request: web.Request, *, roles: tuple[Role, ...] = tuple(Role), allow_query: bool = False
) -> Agent:
    token = bearer_token(request, allow_query=allow_query)
    if token is None:
        raise ApiError(
            401,
            "missing_token",
            "send an agent token: Authorization: Bearer ...",
            headers=CHALLENGE,
        )
    agent = await agents.authenticate(request.app[CONNS].db, token)
    if agent is None:
        raise ApiError(401, "invalid_token", "the token is not valid", headers=CHALLENGE)
    if agent.role not in roles:
        raise ApiError(403, "forbidden", f"this needs the role {' or '.join(roles)}")
    return agent
