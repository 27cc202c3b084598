"""Serves the built playground page and its runtime `/config.json` (URLs differ per stack)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from .paths import REPO_ROOT

__all__ = ["create_app", "main"]


def create_app(dist: Path, config: dict[str, str]) -> FastAPI:
    app = FastAPI(title="playground", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/config.json")
    def runtime_config() -> JSONResponse:
        return JSONResponse(config, headers={"Cache-Control": "no-store"})

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.mount("/", StaticFiles(directory=dist, html=True, check_dir=False), name="page")
    return app


def main() -> None:
    dist = Path(os.environ.get("PLAYGROUND_DIST", REPO_ROOT / "playground" / "dist"))
    config = json.loads(os.environ.get("PLAYGROUND_CONFIG", "{}"))
    port = int(os.environ.get("PLAYGROUND_PORT", "5173"))
    uvicorn.run(create_app(dist, config), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
