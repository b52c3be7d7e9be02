"""Build the production app from the environment (``callpath serve`` and its workers)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from starlette.applications import Starlette

from . import config as configmod
from .app import create_app
from .geo import GeoIP
from .keys import Keys
from .redis_store import client
from .services import GA4_ENDPOINT
from .sessions import Signer, load_secret

log = logging.getLogger("callpath")


def build() -> Starlette:
    """The app as configured by CALLPATH_* variables (set by ``callpath serve``)."""
    path = os.environ.get("CALLPATH_CONFIG", "pools.toml")
    cfg = configmod.load(path).with_secrets()
    data_dir = Path(os.environ.get("CALLPATH_DATA_DIR", ".callpath"))
    url = os.environ["CALLPATH_REDIS_URL"]
    app = create_app(
        cfg,
        client(url),
        keys=Keys(),
        signer=Signer(load_secret(data_dir)),
        geoip=GeoIP(os.environ.get("CALLPATH_GEOIP_DB") or None),
        ga4_endpoint=os.environ.get("CALLPATH_GA4_ENDPOINT", GA4_ENDPOINT),
        run_worker=os.environ.get("CALLPATH_NO_WORKER", "") != "1",
    )
    return app
