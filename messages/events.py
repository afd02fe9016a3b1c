"""Engine events: Docker's event shape, on the daemon's bus and in its journal."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from .base import message


@message
@attrs.frozen(kw_only=True)
class EngineEvent:
    TYPE: ClassVar[str] = "engine.event"
    type: str  # container | image | network | volume | daemon
    action: str
    actor_id: str
    attributes: dict[str, str] = attrs.field(factory=dict)
    time_nano: int = 0
    scope: str = "local"

    def to_docker(self) -> dict[str, Any]:
        """Docker's JSON for /events, with the legacy status/id/from fields."""
        out: dict[str, Any] = {}
        if self.type in ("container", "image"):
            out["status"] = self.action
            out["id"] = self.actor_id
            if "image" in self.attributes and self.type == "container":
                out["from"] = self.attributes["image"]
        out["Type"] = self.type
        out["Action"] = self.action
        out["Actor"] = {"ID": self.actor_id, "Attributes": dict(self.attributes)}
        out["scope"] = self.scope
        out["time"] = self.time_nano // 1_000_000_000
        out["timeNano"] = self.time_nano
        return out
