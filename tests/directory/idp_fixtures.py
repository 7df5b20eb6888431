"""Load IdP request fixtures (tests/fixtures/<idp>/...) with their placeholders filled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent.parent / "fixtures"


def load(name: str, **values: str) -> Any:
    text = (FIXTURES / name).read_text()
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return json.loads(text)
