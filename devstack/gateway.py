"""Rendering nginx/nginx.conf.template the way the nginx image's entrypoint does: the values of
nginx/derived.envsh first, then envsubst."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

from common.config import DEFAULTS

TEMPLATE = Path(__file__).resolve().parent.parent / "nginx" / "nginx.conf.template"
DERIVED = TEMPLATE.with_name("derived.envsh")
DERIVED_NAMES = (
    "UPLOAD_TIMEOUT_S",
    "UPLOAD_BODY_TIMEOUT_S",
    "GATEWAY_BODY_BYTES",
    "UPLOAD_LIMIT_TEXT",
    "REAL_IP_DIRECTIVES",
)
DERIVED_INPUTS = ("FFMPEG_TIMEOUT_S", "CLIENT_TIMEOUT_S", "MAX_UPLOAD_BYTES", "TRUSTED_PROXIES")
_VARIABLE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def render(values: Mapping[str, str], template: Path = TEMPLATE) -> str:
    """Substitute ${NAME} from `values`; every name the template uses must be given."""
    text = template.read_text()
    missing = sorted({name for name in _VARIABLE.findall(text) if name not in values})
    if missing:
        raise KeyError(f"the gateway template needs {', '.join(missing)}")
    return _VARIABLE.sub(lambda match: values[match.group(1)], text)


def derived_gateway_values(env: Mapping[str, str], derived: Path = DERIVED) -> dict[str, str]:
    """What nginx/derived.envsh (`derived`) computes from the settings in `env` (or the
    defaults), one line each (a value may be empty or hold spaces)."""
    inputs = {name: env.get(name) or DEFAULTS[name] for name in DERIVED_INPUTS}
    script = f'. "{derived}" && printf "%s\\n" ' + " ".join(f'"${name}"' for name in DERIVED_NAMES)
    result = subprocess.run(
        ["sh", "-ec", script], env=inputs, capture_output=True, text=True, check=True
    )
    return dict(zip(DERIVED_NAMES, result.stdout.splitlines(), strict=True))
