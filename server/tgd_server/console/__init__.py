"""French police console: session login, live alarm list (SSE), alarm pages, devices, audit."""

from flask import Blueprint

bp = Blueprint(
    "console",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/console-static",
)
