"""The HTTP scoring service (FastAPI): score uploaded clips with trained models, one or several per service.

Every error is a JSON object ``{"error": "..."}`` with a 4xx status that says what was wrong with the
request (401 token, 404 unknown model, 413 too large in bytes or in declared duration, 400 unusable audio,
422 missing fields); scoring runs in a bounded thread pool, off the event loop, with one torch thread per
worker.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Annotated, Any

import torch
from fastapi import Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from asdkit import __version__
from asdkit.errors import AsdkitError, AudioTooLongError
from asdkit.service.models import ServedModel, UnknownModelError, pick_model, score_audio

DEFAULT_MAX_UPLOAD_MB = 20.0

ModelQuery = Annotated[
    str | None, Query(description="Model (machine type) to use; may be left out when only one is served.")
]
SectionQuery = Annotated[
    str | None, Query(description="Section of the clips (digits); default: from DCASE-style file names.")
]


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets a 413 before any parsing or spooling."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        chunks: list[bytes] = []
        total = 0
        more = True
        while more:  # read it all here: an undeclared (chunked) body is counted as it arrives
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_bytes:
                await self._reject(send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, send: Send) -> None:
        limit_mb = self.max_bytes / 2**20
        response = JSONResponse(
            {"error": f"request body larger than the service's limit of {limit_mb:g} MB (--max-upload-mb)"},
            status_code=413,
        )
        await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> dict[str, Any]:
    return {"type": "http.disconnect"}


def create_app(
    models: dict[str, ServedModel],
    *,
    token: str | None = None,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    workers: int = 2,
) -> FastAPI:
    """The service for ``models`` (by name). ``token``: required as ``Authorization: Bearer TOKEN``."""
    if not models:
        raise AsdkitError("no models to serve")
    if max_upload_mb <= 0:
        raise AsdkitError(f"--max-upload-mb must be positive, got {max_upload_mb}")
    if workers < 1:
        raise AsdkitError(f"workers must be at least 1, got {workers}")
    # One torch thread per scoring thread: ``workers`` clips at once use ``workers`` cores, no more. Setting
    # it in a worker changes torch's process-wide default, so shutting down restores it (as the feature
    # extractor's pool does).
    threads = torch.get_num_threads()
    pool = ThreadPoolExecutor(workers, "asdkit-score", initializer=torch.set_num_threads, initargs=(1,))
    started = time.time()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(threads)

    app = FastAPI(
        title="asdkit scoring service",
        version=__version__,
        description="Anomaly scores of machine sound clips (higher = more likely anomalous).",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, max_bytes=int(max_upload_mb * 2**20))

    async def authorised(request: Request) -> None:  # async: no thread hop per request
        if token is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            raise HTTPException(401, "missing or wrong token: send 'Authorization: Bearer TOKEN'")

    Auth = Depends(authorised)

    def chosen(name: str | None) -> ServedModel:
        try:
            return pick_model(models, name)
        except UnknownModelError as exc:
            raise HTTPException(404, str(exc)) from None
        except AsdkitError as exc:
            raise HTTPException(400, str(exc)) from None

    async def score_upload(model: ServedModel, upload: UploadFile, section: str | None) -> dict[str, Any]:
        name = upload.filename or "upload"
        data = await upload.read()
        if not data:
            raise AsdkitError(f"{name}: empty upload (0 bytes)")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool, score_audio, model, io.BytesIO(data), name, section)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _validation_message(exc)}, 422)

    @app.exception_handler(AsdkitError)
    async def bad_input(_: Request, exc: AsdkitError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, 413 if isinstance(exc, AudioTooLongError) else 400)

    @app.get("/health", summary="Liveness: the service is up and which models it holds")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "models": sorted(models), "uptime_s": round(time.time() - started, 1)}

    @app.get("/models", summary="Every served model's configuration", dependencies=[Auth])
    async def list_models() -> dict[str, Any]:
        return {"models": [m.describe() for m in models.values()]}

    @app.get(
        "/model", summary="One model's configuration, threshold and trained-to metrics", dependencies=[Auth]
    )
    async def describe(model: ModelQuery = None) -> dict[str, Any]:
        return chosen(model).describe()

    @app.post("/score", summary="Score one uploaded clip (multipart field 'file')", dependencies=[Auth])
    async def score(
        file: Annotated[UploadFile, File()], model: ModelQuery = None, section: SectionQuery = None
    ) -> dict[str, Any]:
        return await score_upload(chosen(model), file, section)

    @app.post(
        "/score/batch", summary="Score several uploaded clips (repeated field 'files')", dependencies=[Auth]
    )
    async def score_batch(
        files: Annotated[list[UploadFile], File()], model: ModelQuery = None, section: SectionQuery = None
    ) -> JSONResponse:
        served = chosen(model)
        jobs = (score_upload(served, f, section) for f in files)
        outcomes = await asyncio.gather(*jobs, return_exceptions=True)
        results, errors = [], []
        for upload, outcome in zip(files, outcomes, strict=True):
            if isinstance(outcome, AsdkitError):
                errors.append({"file": upload.filename or "upload", "error": str(outcome)})
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                results.append(outcome)
        body: dict[str, Any] = {
            "results": results,
            "errors": errors,
            "n_scored": len(results),
            "n_errors": len(errors),
        }
        if not results:
            body["error"] = f"none of the {len(files)} file(s) could be scored; first: {errors[0]['error']}"
            return JSONResponse(body, 400)
        return JSONResponse(body)

    return app


def _validation_message(exc: RequestValidationError) -> str:
    """One line from FastAPI's validation errors, e.g. a missing upload field."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        if err.get("type") == "missing" and where in ("file", "files"):
            parts.append(f"missing form field {where!r}: upload wav data as multipart/form-data")
        else:
            parts.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"
