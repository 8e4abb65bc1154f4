"""secmon-http settings from the environment, checked before anything binds."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass

from secmon.config import env_ip, env_port, read_secret
from secmon.errors import ConfigError


@dataclass(frozen=True, slots=True)
class HttpSettings:
    server_ip: str
    server_port: int
    token: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HttpSettings:
        env = os.environ if env is None else env
        settings = cls(
            server_ip=env_ip(env, "SERVER_IP", "127.0.0.1"),
            server_port=env_port(env, "SERVER_PORT", 9993),
            token=read_secret(env, "HTTP_TOKEN_FILE"),
        )
        if settings.token is None and not ipaddress.ip_address(settings.server_ip).is_loopback:
            raise ConfigError(
                f"SERVER_IP={settings.server_ip} is not loopback: set HTTP_TOKEN_FILE so that only "
                "holders of the token can see the fleet and run commands"
            )
        return settings
