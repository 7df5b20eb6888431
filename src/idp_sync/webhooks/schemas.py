"""Request bodies of the webhook endpoints API (``webhooks.*_webhook_endpoint`` in the SDK)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    endpoint_url: str = Field(min_length=1, max_length=2048)
    events: list[str] = Field(max_length=200)


class EndpointUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    endpoint_url: str | None = Field(default=None, min_length=1, max_length=2048)
    status: str | None = None
    events: list[str] | None = Field(default=None, max_length=200)
