"""The MQTT topics of one station (``shared/spec/mqtt.md``)."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Topics"]


@dataclass(frozen=True)
class Topics:
    """The topics of one station (``shared/spec/mqtt.md``)."""

    base: str

    @classmethod
    def of(cls, prefix: str, station: str) -> Topics:
        if not station or any(c in station for c in "/+#"):
            raise ValueError(f"station: must be a non-empty id without '/', '+' or '#', got {station!r}")
        return cls(f"{prefix}/{station}")

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def events(self) -> str:
        return f"{self.base}/events"

    @property
    def health(self) -> str:
        return f"{self.base}/health"

    @property
    def model(self) -> str:
        return f"{self.base}/model"

    @property
    def model_push(self) -> str:
        return f"{self.base}/model/push"

    @property
    def commands(self) -> str:
        """Subscription filter of the command requests (``cmd/+``)."""
        return f"{self.base}/cmd/+"

    def command(self, name: str) -> str:
        return f"{self.base}/cmd/{name}"

    def response(self, name: str) -> str:
        return f"{self.base}/cmd/{name}/response"

