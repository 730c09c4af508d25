"""Rendering nginx/nginx.conf.template the way the nginx image's entrypoint does (envsubst)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent.parent / "nginx" / "nginx.conf.template"
_VARIABLE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def render(values: Mapping[str, str], template: Path = TEMPLATE) -> str:
    """Substitute ${NAME} from `values`; every name the template uses must be given."""
    text = template.read_text()
    missing = sorted({name for name in _VARIABLE.findall(text) if name not in values})
    if missing:
        raise KeyError(f"the gateway template needs {', '.join(missing)}")
    return _VARIABLE.sub(lambda match: values[match.group(1)], text)
