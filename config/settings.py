"""Settings, read from the environment (and a ``.env`` file beside manage.py, if any).

Without ``DATABASE_URL`` and ``CELERY_BROKER_URL`` the project runs on its embedded default:
SQLite in WAL mode and Celery's ``filesystem://`` broker under ``var/``. Secrets have no
default: ``SECRET_KEY``, ``FIELD_ENCRYPTION_KEYS`` and ``MT5_BRIDGE_TOKEN`` must be set (the
quick-start script writes them to ``.env`` once). A bad value raises ImproperlyConfigured
naming the variable.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("VAR_DIR", default=str(BASE_DIR / "var"))).resolve()

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env", overwrite=False)


def _required(name: str) -> str:
    value = env.str(name, default="")
    if not value:
        raise ImproperlyConfigured(f"Set the {name} environment variable (see README).")
    return value


def _positive(name: str, default: float) -> float:
    try:
        value = env.float(name, default=default)
    except (ValueError, TypeError):
        raise ImproperlyConfigured(f"{name} must be a number") from None
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be positive, got {value}")
    return value


SECRET_KEY = _required("SECRET_KEY")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=["http://127.0.0.1:8000"])

# --- HTTPS: each setting from the environment, all on by default when DEBUG is off
# (``HTTPS=false`` turns the defaults off: the demo on plain http://127.0.0.1, the tests).
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (and strips a client's own).
HTTPS = env.bool("HTTPS", default=not DEBUG)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=HTTPS)
# the load balancer's health check and Prometheus's scrape may come over plain http
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=HTTPS)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=HTTPS)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=HTTPS)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=HTTPS)
if env.bool("SECURE_PROXY_SSL_HEADER", default=HTTPS):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# /metrics: with METRICS_BEARER_TOKEN (Authorization: Bearer …) or METRICS_BASIC_AUTH
# (user:password) set, only a scrape that presents one is answered; without either, it is
# refused when METRICS_AUTH_REQUIRED (on by default with HTTPS). config.middleware.
METRICS_BEARER_TOKEN = env.str("METRICS_BEARER_TOKEN", default="")
METRICS_BASIC_AUTH = env.str("METRICS_BASIC_AUTH", default="")
if METRICS_BASIC_AUTH and ":" not in METRICS_BASIC_AUTH:
    raise ImproperlyConfigured("METRICS_BASIC_AUTH must be user:password")
METRICS_AUTH_REQUIRED = env.bool("METRICS_AUTH_REQUIRED", default=HTTPS)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",  # rotated and revoked refresh tokens
    "axes",  # admin sign-in lockout
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_prometheus",
    "accounts",
    "positions",
    "reconciliation",
    "risk",
    "guards",
    "notifications",
    "pipeline",  # a good read → reconciliation → guards → closes → alerts (pipeline/__init__)
    "dashboard",  # reads every app for the admin index and /metrics: last, on top
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.body_size_limit",  # 413 before any view reads a body
    "config.middleware.metrics_auth",  # /metrics: a bearer token or basic auth
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # answers the admin's locked-out sign-ins
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
# django-axes first: it counts the admin's failed sign-ins and refuses a locked-out one
# before the password is hashed. Only the admin site: the API has DRF throttles
# (accounts.auth_apis). Locked out by username and, separately, by address.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend",
                           "django.contrib.auth.backends.ModelBackend"]
AXES_ONLY_ADMIN_SITE = True
AXES_FAILURE_LIMIT = int(_positive("AXES_FAILURE_LIMIT", 5))
AXES_COOLOFF_TIME = timedelta(minutes=_positive("AXES_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
# Proxies in front of the web process whose X-Forwarded-For hops are trusted (0: none):
# the client address the throttles and the lockout count by.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
AXES_IPWARE_PROXY_COUNT = TRUSTED_PROXY_COUNT or None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database: PostgreSQL by DATABASE_URL, else SQLite in WAL mode (embedded default) ---
if env.str("DATABASE_URL", default=""):
    try:
        DATABASES = {"default": env.db("DATABASE_URL")}
    except environ.ImproperlyConfigured as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {exc}") from None
    DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            "OPTIONS": {
                # WAL lets the web, worker and beat processes read while one writes;
                # IMMEDIATE takes the write lock at BEGIN, so a transaction never fails
                # half-way on "database is locked" after it has read.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
            "TEST": {"NAME": VAR_DIR / "test.sqlite3"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache (rate limits, locks): Redis by REDIS_URL, else files shared by all processes ---
if env.str("REDIS_URL", default=""):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": env.str("REDIS_URL")}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                          "LOCATION": str(VAR_DIR / "cache")}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"httpx": {"level": "WARNING"}},
}

REST_FRAMEWORK = {
    # JWT first: an anonymous API call then answers 401 with "WWW-Authenticate: Bearer".
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer",
                                 "rest_framework.renderers.BrowsableAPIRenderer"],
    "EXCEPTION_HANDLER": "config.errors.exception_handler",
    # A body cap and a nesting limit before json recurses (config/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["config.parsers.LimitedJSONParser",
                               "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # sign-in attempts (accounts.auth_apis), counted before any password hash
    "DEFAULT_THROTTLE_RATES": {
        "login_ip": env.str("LOGIN_RATE_PER_IP", default="20/min"),
        "login_username": env.str("LOGIN_RATE_PER_USERNAME", default="5/min"),
    },
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
}
# Every request body is capped (413 on every path: config.middleware.body_size_limit), and
# JSON nests at most API_JSON_MAX_DEPTH levels (400), so no input reaches a 500.
DATA_UPLOAD_MAX_MEMORY_SIZE = int(_positive("DATA_UPLOAD_MAX_MEMORY_SIZE", 524_288))
API_JSON_MAX_DEPTH = int(_positive("API_JSON_MAX_DEPTH", 32))
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=7)),
    "AUTH_HEADER_TYPES": ("Bearer",),
    # a refresh token works once (rotated, the used one blacklisted); a password change or a
    # deactivation revokes them all (accounts.tokens), and access tokens carry a hash of
    # the password, so they die with it too
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "CHECK_REVOKE_TOKEN": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Trading back office API",
    "DESCRIPTION": "Members' MetaTrader 5 accounts, positions, P&L and equity. Money is a "
                   "decimal string in the account's currency; times are UTC (ISO 8601).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI served from this server (drf-spectacular-sidecar), not from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"SideEnum": ["buy", "sell"],
                            "AlertModeEnum": "notifications.models.AlertPreference.Mode",
                            "PositionSideEnum": [("buy", "Buy"), ("sell", "Sell")]},
    # Ids are positive integers; the lenient converter only exists to answer a JSON 400.
    "PATH_CONVERTER_OVERRIDES": {"anyid": {"type": "integer", "minimum": 1,
                                           "maximum": 2**63 - 1}},
    # the API is JSON: the form parsers stay for the browsable API, undocumented
    "PARSER_WHITELIST": ["config.parsers.LimitedJSONParser"],
    # the schema says what the API accepts (config/schema.py); enums as by default
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "config.schema.postprocess"],
}

# --- Celery (settings namespace CELERY_) ---
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_queue_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "queue"),
        "data_folder_out": str(_queue_dir / "queue"),
        "processed_folder": str(_queue_dir / "processed"),
        # the exchange tables (else written into the working directory, ./control)
        "control_folder": str(_queue_dir / "control"),
        "store_processed": False,
    }
else:
    # Redis: a message a worker took but never acknowledged (acks_late, the worker killed)
    # comes back after the visibility timeout. It must outlast the longest task (90 s hard
    # limit), or a slow task would run twice at once; meanwhile the guards' sweeper resumes
    # lost closes and re-checks within seconds (guards.services.guards_sweep).
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 600}
if CELERY_BROKER_URL.startswith("redis://"):
    # kombu's Redis transport that survives a Redis restart (config/redis_transport.py)
    CELERY_BROKER_TRANSPORT = "config.redis_transport:Transport"
# Tasks running when the broker connection drops are cancelled and delivered again (they
# are idempotent), as Celery 6 will do by default.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
# Survive a broker restart: keep reconnecting, forever (Celery: broker_connection_retry).
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_TASK_IGNORE_RESULT = True
# Task events for Flower (task list, not only workers): sent, received, started, succeeded.
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SOFT_TIME_LIMIT = 60
CELERY_TASK_TIME_LIMIT = 90
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "sync"
CELERY_TASK_ROUTES = {
    # the 1 s tick and the stale sweep on their own queue, served by the Procfile's
    # dispatcher (a solo worker): a hung terminal blocking every sync process cannot stop
    # the dispatcher, nor hide that accounts are going stale
    "pipeline.tasks.sync_dispatch": {"queue": "dispatch"},
    "positions.tasks.sync_mark_stale": {"queue": "dispatch"},
    "pipeline.tasks.accounts_sync": {"queue": "sync"},
    # the re-check is a fresh read through the pipeline, on the guards' own queue
    "pipeline.tasks.liquidation_recheck": {"queue": "guards"},
    # the mark-to-market tick and the priority reads it asks for: guards' queue, so a sync
    # backlog never delays them, and never the dispatcher's (a quote is a terminal call)
    "pipeline.tasks.mark_to_market": {"queue": "guards"},
    "pipeline.tasks.accounts_priority_read": {"queue": "guards"},
    "guards.tasks.close_request_execute": {"queue": "close"},
    "guards.tasks.close_requests_execute": {"queue": "close"},
    "positions.tasks.*": {"queue": "sync"},
    "guards.tasks.*": {"queue": "guards"},
    "notifications.tasks.*": {"queue": "notify"},
}
# django-celery-beat's DatabaseScheduler behind a lease: one beat sends, another idles
CELERY_BEAT_SCHEDULER = "config.beat:SingletonScheduler"
# Beat sleeps at most this long between looks at its schedule. The DatabaseScheduler's
# default is 5 s, which would stretch a 1 s dispatcher tick to 5 s.
CELERY_BEAT_MAX_LOOP_INTERVAL = 1
CELERY_BEAT_SCHEDULE = {
    "sync-dispatch": {
        "task": "pipeline.tasks.sync_dispatch",
        "schedule": 1.0,
        "options": {"expires": 5},
    },
    "mark-to-market": {  # estimates from quotes; priority reads near a threshold
        "task": "pipeline.tasks.mark_to_market",
        "schedule": 1.0,
        "options": {"expires": 2},
    },
    "sync-mark-stale": {  # stale within 3 cadences of the last good read
        "task": "positions.tasks.sync_mark_stale",
        "schedule": 5.0,
        "options": {"expires": 5},
    },
    "guards-market-scan": {
        "task": "guards.tasks.market_guard_scan",
        "schedule": 30.0,
        "options": {"expires": 25},
    },
    "guards-sweep": {
        "task": "guards.tasks.guards_sweep",
        "schedule": 5.0,
        "options": {"expires": 5},
    },
    "alerts-sweep": {
        "task": "notifications.tasks.alerts_sweep",
        "schedule": 30.0,
        "options": {"expires": 25},
    },
    "dashboard-sparklines-warm": {  # the owner's dashboard: equity buckets into the cache
        "task": "dashboard.tasks.equity_sparklines_warm",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "sync-logs-prune": {
        "task": "positions.tasks.sync_logs_prune",
        "schedule": 86400.0,  # daily
    },
}

DEMO_BOT = env.bool("DEMO_BOT", default=False)
if DEMO_BOT:  # the demo's trading bot (reconciliation/demo.py); never in production
    CELERY_BEAT_SCHEDULE["demo-bot"] = {
        "task": "reconciliation.tasks.demo_bot_step",
        "schedule": 5.0,
        "options": {"expires": 10},
    }

# --- the platform's own settings (names and defaults as DESIGN.md lists them) ---
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])
if not FIELD_ENCRYPTION_KEYS:
    raise ImproperlyConfigured(
        "Set FIELD_ENCRYPTION_KEYS (comma-separated Fernet keys, newest first)."
    )
MT5_BRIDGE_URL = env.str("MT5_BRIDGE_URL", default="http://127.0.0.1:8765")
MT5_BRIDGE_TOKEN = _required("MT5_BRIDGE_TOKEN")
MT5_CONNECTION_TIMEOUT = _positive("MT5_CONNECTION_TIMEOUT", 10)
MT5_VERIFY_ON_LINK = env.bool("MT5_VERIFY_ON_LINK", default=True)
# The trade server time zone when it cannot be detected at link time (no live tick).
MT5_DEFAULT_SERVER_TIMEZONE = env.str("MT5_DEFAULT_SERVER_TIMEZONE", default="UTC")
try:
    ZoneInfo(MT5_DEFAULT_SERVER_TIMEZONE)
except (ZoneInfoNotFoundError, ValueError) as _exc:
    raise ImproperlyConfigured(
        f"MT5_DEFAULT_SERVER_TIMEZONE must be an IANA time zone, not "
        f"{MT5_DEFAULT_SERVER_TIMEZONE!r}") from _exc
FORCE_REFRESH_MIN_SECONDS = int(_positive("FORCE_REFRESH_MIN_SECONDS", 10))
# ?force_refresh=true waits at most this long for a sync of the account already running
FORCE_REFRESH_WAIT_SECONDS = _positive("FORCE_REFRESH_WAIT_SECONDS", 15)
MT5_ACCOUNT_FRESHNESS_MINUTES = _positive("MT5_ACCOUNT_FRESHNESS_MINUTES", 5)
ACCOUNT_CACHE_TTL_SECONDS = _positive("ACCOUNT_CACHE_TTL_SECONDS", 30)
SYNC_DEFAULT_CADENCE_SECONDS = int(_positive("SYNC_DEFAULT_CADENCE_SECONDS", 10))
# /healthz: 503 when the dispatcher's heartbeat is older, or more accounts are stale
HEALTH_DISPATCHER_MAX_AGE_SECONDS = _positive("HEALTH_DISPATCHER_MAX_AGE_SECONDS", 5)
HEALTH_STALE_MAX_PERCENT = _positive("HEALTH_STALE_MAX_PERCENT", 10)
SYNC_BATCH_SIZE = int(_positive("SYNC_BATCH_SIZE", 20))
SYNC_MAX_DISPATCH = int(_positive("SYNC_MAX_DISPATCH", 2000))
SYNC_LOG_RETENTION_DAYS = int(_positive("SYNC_LOG_RETENTION_DAYS", 90))
# The fleet (accounts.terminals): a terminal with this many failed call sequences in a row
# hands its accounts to healthy ones; a call sequence's lease on its terminal expires after
# TERMINAL_LEASE_SECONDS (a killed worker's lease is taken over then)
TERMINAL_FAILOVER_FAILURES = int(_positive("TERMINAL_FAILOVER_FAILURES", 3))
TERMINAL_LEASE_SECONDS = _positive("TERMINAL_LEASE_SECONDS", 30)
# IB Gateways (Terminal kind ib_gateway): each process connects as clientId = the terminal's
# client_id + IB_CLIENT_ID_OFFSET + its process id (accounts.gateways.ib_client_id); give each
# machine its own offset (e.g. 0, 5000000, 10000000: above Linux's largest pid, 4194304)
IB_CLIENT_ID_OFFSET = env.int("IB_CLIENT_ID_OFFSET", default=0)
if not 0 <= IB_CLIENT_ID_OFFSET <= 2_000_000_000:
    raise ImproperlyConfigured("IB_CLIENT_ID_OFFSET must be between 0 and 2000000000")
# The mark-to-market trigger (pipeline.tasks.mark_to_market): an account estimated within
# this many percentage points of the critical drawdown (or at warning) gets a priority
# read; routine reads of its terminal wait at most MTM_PRIORITY_SECONDS for it
MTM_NEAR_CRITICAL_POINTS = _positive("MTM_NEAR_CRITICAL_POINTS", 2)
MTM_PRIORITY_SECONDS = _positive("MTM_PRIORITY_SECONDS", 5)
# an account asked for a priority read is not asked again until a read of it has ended,
# or this long (the task's expiry: lost); at most MTM_PRIORITY_BATCH accounts per terminal
# per pass (the most urgent; the rest at the next pass)
MTM_PRIORITY_ANSWER_SECONDS = _positive("MTM_PRIORITY_ANSWER_SECONDS", 30)
MTM_PRIORITY_BATCH = int(_positive("MTM_PRIORITY_BATCH", 4))
BOT_MAGIC = env.int("BOT_MAGIC", default=20240101)
DEFAULT_FIXED_RISK_PERCENT = _positive("DEFAULT_FIXED_RISK_PERCENT", 3.0)
MARGIN_BUFFER_PERCENT = _positive("MARGIN_BUFFER_PERCENT", 20.0)
ENTRY_SPLIT_PERCENTS = (env.float("ENTRY_SPLIT_1_PERCENT", default=50.0),
                        env.float("ENTRY_SPLIT_2_PERCENT", default=35.0),
                        env.float("ENTRY_SPLIT_3_PERCENT", default=15.0))
if abs(sum(ENTRY_SPLIT_PERCENTS) - 100) > 1e-9 or min(ENTRY_SPLIT_PERCENTS) < 0:
    raise ImproperlyConfigured("ENTRY_SPLIT_{1,2,3}_PERCENT must be ≥ 0 and sum to 100")
DEVICE_SYNC_MAX_AGE_SECONDS = int(_positive("DEVICE_SYNC_MAX_AGE_SECONDS", 300))
DEVICE_SYNC_MAX_BODY_BYTES = int(_positive("DEVICE_SYNC_MAX_BODY_BYTES", 512_000))
# An EA push must add up (positions.plausibility): identities within this % of the balance
# (at least 1.00), equity within PUSH_MAX_JUMP_PERCENT of the last good read unless cash
# flows explain it; a rejected push alerts the owners at most once per account per window.
PUSH_PLAUSIBILITY_TOLERANCE_PERCENT = _positive("PUSH_PLAUSIBILITY_TOLERANCE_PERCENT", 0.5)
PUSH_MAX_JUMP_PERCENT = _positive("PUSH_MAX_JUMP_PERCENT", 20)
PUSH_REJECT_ALERT_SECONDS = int(_positive("PUSH_REJECT_ALERT_SECONDS", 300))
MAX_DRAWDOWN_PERCENT = _positive("MAX_DRAWDOWN_PERCENT", 20)
DRAWDOWN_ALERT_THRESHOLD_PERCENT = _positive("DRAWDOWN_ALERT_THRESHOLD_PERCENT", 15)
MIN_EQUITY = _positive("MIN_EQUITY", 100)
PRE_LIQUIDATION_WARNING_SECONDS = int(_positive("PRE_LIQUIDATION_WARNING_SECONDS", 10))
PRICE_GAP_ALERT_PERCENT = _positive("PRICE_GAP_ALERT_PERCENT", 5)
BID_ASK_SPREAD_MAX_PERCENT = _positive("BID_ASK_SPREAD_MAX_PERCENT", 0.5)
MIN_LIQUIDITY_VOLUME_LOTS = _positive("MIN_LIQUIDITY_VOLUME_LOTS", 10)
TELEGRAM_BOT_TOKEN = env.str("TELEGRAM_BOT_TOKEN", default="")
TELEGRAM_API_BASE_URL = env.str("TELEGRAM_API_BASE_URL", default="https://api.telegram.org")
TELEGRAM_INITDATA_MAX_AGE_SECONDS = int(_positive("TELEGRAM_INITDATA_MAX_AGE_SECONDS", 86400))
TELEGRAM_AUTO_CREATE_MEMBERS = env.bool("TELEGRAM_AUTO_CREATE_MEMBERS", default=True)
MINI_APP_POLL_SECONDS = int(_positive("MINI_APP_POLL_SECONDS", 30))
# The execution service registers expected trades with this token (empty: owner only).
EXECUTION_SERVICE_TOKEN = env.str("EXECUTION_SERVICE_TOKEN", default="")
