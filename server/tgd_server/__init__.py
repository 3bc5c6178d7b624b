"""TGD telemetry server: device ingest, REST API, police console, admin commands."""

from __future__ import annotations

import importlib.util
import logging

from flask import Flask

from . import db, settings


def create_app(test_config: dict | None = None) -> Flask:
    """The Flask app. Settings come from the environment (settings.py), then `test_config`."""
    app = Flask(__name__)
    app.config.from_mapping(settings.from_environment())
    if test_config:
        app.config.update(test_config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = app.config["SECRET_KEY_LOADER"]()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # Alembic logs its plugins and every migration step at INFO: a dozen lines in front of
    # each admin command. `init-db` says the revision it reached; problems still show.
    logging.getLogger("alembic").setLevel(logging.WARNING)

    db.init_app(app)
    from . import admin, api, file_modes, http_guards, ingest_http, ota_api

    file_modes.warn_if_wider(app.config["TGD_DATABASE_URL"], app.config.get("TGD_VAR_DIR"))
    http_guards.init_app(app)  # before the blueprints: the bounded <int:> converter
    # Device messages skip Flask's request machinery (inside ProxyFix: same client address).
    app.wsgi_app = ingest_http.DeviceMessageEndpoint(app.wsgi_app,
                                                     app.extensions["tgd_sessionmaker"])
    # Outermost: a body the server cannot read (bad chunked encoding) is a 400, not a 500.
    app.wsgi_app = http_guards.ReadableInput(app.wsgi_app)
    proxies = int(app.config.get("TGD_PROXY_COUNT") or 0)
    if proxies:
        # Behind nginx/HAProxy: the client's address (security log, login rate limit)
        # comes from X-Forwarded-For, trusting only the given number of proxies.
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)

    app.register_blueprint(ingest_http.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(ota_api.bp)
    admin.init_app(app)
    if importlib.util.find_spec("tgd_server.console") is not None:
        from . import console

        init_console = getattr(console, "init_app", None)
        if init_console is not None:
            init_console(app)
        else:
            app.register_blueprint(console.bp)
    return app
