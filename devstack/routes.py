"""Which function serves each path and method: the one route table of the gateway.

nginx/nginx.conf.template routes these in nginx's terms; the dispatcher that stands in for nginx
(`make run` without nginx) is built from this table, and tests/end_to_end/test_routes.py sends
every method to every path through both and compares the answers. Reads go to get_record, writes
(resumable uploads included, tus: their HEAD too) to add_record.
"""

from __future__ import annotations

from collections.abc import Mapping

FUNCTIONS = ("create_user", "add_record", "get_record")
UPLOAD = "/uploads/{id}"
"""The one route with a variable part: one path segment after /uploads/."""

ROUTES: Mapping[str, Mapping[str, str]] = {
    "/user": {"POST": "create_user"},
    "/record": {
        "GET": "get_record",
        "HEAD": "get_record",
        "POST": "add_record",
        "DELETE": "add_record",
    },
    "/records": {"GET": "get_record", "HEAD": "get_record"},
    "/uploads": {"OPTIONS": "add_record", "POST": "add_record"},
    UPLOAD: {"HEAD": "add_record", "PATCH": "add_record", "DELETE": "add_record"},
}
