"""What a unit of work needs, handed alike to HTTP handlers and jobs."""

from __future__ import annotations

from dataclasses import dataclass, field

from arq.connections import ArqRedis, RedisSettings, create_pool

from contactcenter.clock import Clock, utc_now
from contactcenter.db import Pool
from contactcenter.settings import Settings


@dataclass(frozen=True)
class Conns:
    db: Pool
    redis: ArqRedis
    settings: Settings
    clock: Clock = field(default=utc_now)


# how long a call to Redis after a commit may take: a Redis that accepts connections but
# does not answer must not hold up an acknowledgement (the reconciler covers what is lost)
REDIS_CALL_TIMEOUT_SECONDS = 1.0


def redis_settings(url: str) -> RedisSettings:
    settings = RedisSettings.from_dsn(url)
    # fail fast: PostgreSQL is the truth and the reconciler covers what Redis loses, so a
    # request must not hang on a Redis that is away
    settings.conn_timeout = 2
    settings.conn_retries = 2
    return settings


async def create_redis(url: str) -> ArqRedis:
    return await create_pool(redis_settings(url))
