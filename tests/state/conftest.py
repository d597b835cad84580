from tests.state.redis_fixtures import key_prefix, redis_url
from tests.state.redis_server import start_redis

__all__ = ["key_prefix", "redis_url", "start_redis"]
