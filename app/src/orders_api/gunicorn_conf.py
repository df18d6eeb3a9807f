"""Gunicorn settings, all from the environment (see config.py).

Socket activation: when systemd passes sockets (LISTEN_FDS/LISTEN_PID), gunicorn serves on every
one of them (TCP and Unix alike) and ignores `bind`. Otherwise it binds BIND.
SIGTERM: the arbiter stops accepting, lets each worker finish its in-flight requests for up to
GRACEFUL_TIMEOUT_SECONDS, then exits.
"""

from orders_api.config import load_settings
from orders_api.logs import logging_config

_settings = load_settings()

wsgi_app = "orders_api.app:create_app()"
worker_class = "orders_api.serving.DrainingUvicornWorker"
bind = [_settings.bind]
workers = _settings.web_concurrency
graceful_timeout = _settings.graceful_timeout_seconds
# Longer than the ALB idle timeout (60 s), so the balancer never reuses a connection we closed.
keepalive = _settings.keepalive_seconds
timeout = 60
proc_name = "orders-api"
# gunicorn's runtime control socket (default ~/.gunicorn/gunicorn.ctl) would be shared by every
# instance on a host and needs a writable home; the service does not use it.
control_socket_disable = True
accesslog = None
logconfig_dict = logging_config(_settings.log_level)
loglevel = _settings.log_level.lower()
