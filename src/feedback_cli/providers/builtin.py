"""The built-in providers' declarations, registered like a third party's (`providers/registry.py`).

Kept apart from their implementations so that reading them imports no client library: `openai` and
`replicate` are imported only when a run builds the provider.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from feedback_cli.providers.provider import Provider, Role

if TYPE_CHECKING:
    from feedback_cli.providers.base import Agents, Media


class OfflineProvider(Provider):
    """Deterministic agents and procedurally drawn media: no network, no keys, cost 0."""

    name: ClassVar[str] = "offline"
    roles: ClassVar[tuple[Role, ...]] = ("agents", "media")

    def agents(self) -> Agents:
        from feedback_cli.providers.offline.agents import OfflineAgents

        return OfflineAgents(self.settings)

    def media(self) -> Media:
        from feedback_cli.providers.offline.media import OfflineMedia

        return OfflineMedia(self.settings)


class OpenAIProvider(Provider):
    """The agents on any OpenAI-compatible server; its key and URL are `Settings` fields (VQAScore reads them)."""

    name: ClassVar[str] = "openai"
    roles: ClassVar[tuple[Role, ...]] = ("agents",)
    configured_by: ClassVar[tuple[str, ...]] = ("openai_api_key", "openai_base_url")
    hint: ClassVar[str] = "OPENAI_BASE_URL alone will do for a local OpenAI-compatible server"
    concurrency_setting: ClassVar[str] = "llm_concurrency"

    def agents(self) -> Agents:
        from feedback_cli.providers.openai_agents import OpenAIAgents

        return OpenAIAgents(self.settings)


class ReplicateProvider(Provider):
    """Images and videos on Replicate."""

    name: ClassVar[str] = "replicate"
    roles: ClassVar[tuple[Role, ...]] = ("media",)
    configured_by: ClassVar[tuple[str, ...]] = ("replicate_api_token",)
    concurrency_setting: ClassVar[str] = "replicate_concurrency"

    def media(self) -> Media:
        from feedback_cli.providers.replicate_media import ReplicateMedia

        return ReplicateMedia(self.settings)
