"""SSO tables (issue 5): SAML connections and their IdP signing certificates, group-to-role
mappings, outstanding AuthnRequests, the assertion replay cache, SSO profiles, sign-in
events for the worker, and the one-use codes and access tokens of the WorkOS SSO flow.

Codes and access tokens are stored as SHA-256 only (DESIGN §7).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from idp_sync.db import Base, JSONType, UTCDateTime, utcnow


class Connection(Base):
    """A SAML connection of one organization (WorkOS ``Connection``)."""

    __tablename__ = "sso_connections"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    connection_type: Mapped[str] = mapped_column(String(50))
    state: Mapped[str] = mapped_column(String(20), default="draft")
    external_id: Mapped[str | None] = mapped_column(String(255))
    idp_entity_id: Mapped[str | None] = mapped_column(String(1024))
    idp_sso_url: Mapped[str | None] = mapped_column(String(2048))
    sp_entity_id: Mapped[str] = mapped_column(String(1024))
    acs_url: Mapped[str] = mapped_column(String(2048))
    attribute_maps: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    allow_idp_initiated: Mapped[bool] = mapped_column(Boolean, default=False)
    allow_sha1: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class SamlIdpSigningCert(Base):
    """A certificate whose key may sign this connection's responses (several during rotation)."""

    __tablename__ = "sso_idp_signing_certs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    connection_id: Mapped[str] = mapped_column(
        ForeignKey("sso_connections.id", ondelete="CASCADE"), index=True
    )
    value: Mapped[str] = mapped_column(Text)  # PEM
    not_before: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    not_after: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class SsoGroupRoleMapping(Base):
    """A group value as the IdP sends it in the groups attribute, mapped to a role."""

    __tablename__ = "sso_group_role_mappings"
    __table_args__ = (UniqueConstraint("connection_id", "group", "role_slug"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    connection_id: Mapped[str] = mapped_column(
        ForeignKey("sso_connections.id", ondelete="CASCADE"), index=True
    )
    group: Mapped[str] = mapped_column(String(255))
    role_slug: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class SamlAuthnRequest(Base):
    """An AuthnRequest sent and not yet answered: the ACS consumes it (InResponseTo)."""

    __tablename__ = "sso_authn_requests"

    id: Mapped[str] = mapped_column(String(60), primary_key=True)  # the AuthnRequest ID
    connection_id: Mapped[str] = mapped_column(
        ForeignKey("sso_connections.id", ondelete="CASCADE"), index=True
    )
    redirect_uri: Mapped[str] = mapped_column(String(2048))
    state: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class SamlAssertionReplay(Base):
    """Assertion ids seen, kept until NotOnOrAfter + skew: a replay is refused even after a
    restart, and two concurrent posts of one assertion collide on the primary key."""

    __tablename__ = "sso_assertion_replays"

    assertion_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    connection_id: Mapped[str] = mapped_column(String(40))
    not_on_or_after: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class SsoProfile(Base):
    """A person as a connection knows them: the groups of the last sign-in and the roles
    resolved from them, and the membership they are linked to once the worker ran."""

    __tablename__ = "sso_profiles"
    __table_args__ = (UniqueConstraint("connection_id", "idp_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    connection_id: Mapped[str] = mapped_column(ForeignKey("sso_connections.id", ondelete="CASCADE"))
    organization_id: Mapped[str] = mapped_column(String(40), index=True)
    idp_id: Mapped[str] = mapped_column(String(512))
    email: Mapped[str] = mapped_column(String(320), index=True)
    first_name: Mapped[str | None] = mapped_column(String(255))
    last_name: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    groups: Mapped[list[str]] = mapped_column(JSONType, default=list)
    groups_known: Mapped[bool] = mapped_column(Boolean, default=True)
    # When ``groups`` were received: an Entra overage sign-in keeps them, and says since when.
    groups_received_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    roles: Mapped[list[str]] = mapped_column(JSONType, default=list)
    raw_attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    membership_id: Mapped[str | None] = mapped_column(String(40), index=True)
    last_sign_in_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class SsoLoginEvent(Base):
    """A validated sign-in, written with the profile; the worker folds it into the membership."""

    __tablename__ = "sso_login_events"
    __table_args__ = (Index("ix_sso_login_events_pending", "processed_at", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("sso_profiles.id", ondelete="CASCADE"))
    connection_id: Mapped[str] = mapped_column(String(40))
    ip_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    # The ACS request's, for the worker's logs (the row is the task's only message).
    correlation_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class SsoAuthorizationCode(Base):
    """A one-use, short-lived code handed to the app's redirect URI."""

    __tablename__ = "sso_authorization_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("sso_profiles.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(String(2048))
    profile: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class SsoAccessToken(Base):
    """The bearer token of ``GET /sso/profile``."""

    __tablename__ = "sso_access_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("sso_profiles.id", ondelete="CASCADE"))
    profile: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class SsoRedirectUri(Base):
    """A redirect URI registered through the API (besides ``IDP_SYNC_REDIRECT_URIS``)."""

    __tablename__ = "sso_redirect_uris"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    uri: Mapped[str] = mapped_column(String(2048), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
