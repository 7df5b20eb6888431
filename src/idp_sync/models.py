"""Imports every table module so that ``Base.metadata`` is complete (Alembic, tests)."""

from idp_sync import config_cache
from idp_sync.auth import models as auth_models
from idp_sync.db import Base
from idp_sync.directory import models as directory_models
from idp_sync.events import models as event_models
from idp_sync.jobs import models as job_models
from idp_sync.memberships import models as membership_models
from idp_sync.organizations import models as organization_models
from idp_sync.rbac import models as rbac_models
from idp_sync.sso import models as sso_models
from idp_sync.users import models as user_models
from idp_sync.webhooks import models as webhook_models

__all__ = [
    "Base",
    "auth_models",
    "config_cache",
    "directory_models",
    "event_models",
    "job_models",
    "membership_models",
    "organization_models",
    "rbac_models",
    "sso_models",
    "user_models",
    "webhook_models",
]
