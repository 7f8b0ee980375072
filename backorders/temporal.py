"""Connecting to Temporal and preparing a namespace for the line workflows."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from backorders import search_attributes, tracing
from backorders.settings import Settings

log = logging.getLogger(__name__)

_ENCODINGS = tuple(
    PydanticJSONPlainPayloadConverter() if isinstance(c, JSONPlainPayloadConverter) else c
    for c in DefaultPayloadConverter.default_encoding_payload_converters
)


class PayloadConverter(CompositePayloadConverter):
    """The SDK's encodings, with JSON read and written by pydantic's compiled
    (de)serialisers, one per type. The SDK makes a payload converter for every workflow
    activation; this one shares a single JSON converter, so each type's adapter is built
    once per process (`temporalio.contrib.pydantic`'s own class builds a fresh cache of
    them, and a schema serialiser, every time)."""

    def __init__(self) -> None:
        super().__init__(*_ENCODINGS)


DATA_CONVERTER = DataConverter(payload_converter_class=PayloadConverter)
"""How every client, worker and replayer of ours carries payloads: JSON of the same
shape as the SDK's default converter writes (datetimes end in Z rather than +00:00).
The default converter resolves a dataclass's type hints on every decode: 45-80 µs for
a line's activity inputs, results and signals against 4-7 µs here (once each type's
adapter is built), and 680 µs against 15 µs for a line's final state. Payloads either
converter wrote read with the other, so recorded histories and workers of either kind
mix."""


def tls_config(settings: Settings) -> TLSConfig | bool:
    """TLS as the settings ask: off, the system's trust store (`TEMPORAL_TLS=true`, or
    implied by an API key), a private CA, a client certificate for mTLS, and the name
    the server's certificate carries. Files are read now: a missing one fails at start,
    naming the setting, not at the first call."""
    if not settings.temporal_uses_tls:
        return False

    def read(name: str, path: Path | None) -> bytes | None:
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ValueError(f"{name}: cannot read {path}: {exc.strerror}") from None

    return TLSConfig(
        server_root_ca_cert=read("TEMPORAL_TLS_CA", settings.temporal_tls_ca),
        domain=settings.temporal_tls_server_name,
        client_cert=read("TEMPORAL_TLS_CERT", settings.temporal_tls_cert),
        client_private_key=read("TEMPORAL_TLS_KEY", settings.temporal_tls_key),
    )


async def connect(settings: Settings, *, attempts: int = 1, lazy: bool = False,
                  runtime: Runtime | None = None) -> Client:
    """Connect, retrying for a while when the server is still starting. `lazy`: connect
    on first use instead (the API starts whether or not Temporal is up). The same TLS,
    API key and tracing for every process: API, worker and CLI."""
    tls = tls_config(settings)
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    for attempt in range(1, attempts + 1):
        try:
            return await Client.connect(
                settings.temporal_address, namespace=settings.temporal_namespace,
                data_converter=DATA_CONVERTER, lazy=lazy, tls=tls, api_key=api_key,
                runtime=runtime, interceptors=tracing.client_interceptors(settings),
            )
        except RuntimeError:
            if attempt == attempts:
                raise
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")  # pragma: no cover


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Register the custom search attributes the line workflows set (idempotent)."""
    wanted = {key.name for key in search_attributes.ALL}
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        wanted -= set(existing.custom_attributes)
    except RPCError as exc:
        if exc.status is not RPCStatusCode.UNIMPLEMENTED:  # the time-skipping test server
            raise
    if not wanted:
        return
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=namespace,
                search_attributes={
                    name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in wanted
                },
            )
        )
    except RPCError as exc:
        if exc.status is RPCStatusCode.PERMISSION_DENIED:
            # Temporal Cloud keeps namespace changes to its own control plane.
            raise RuntimeError(
                f"namespace {namespace!r} lacks the search attributes "
                f"{', '.join(sorted(wanted))} and this client may not add them: add each as "
                "Keyword once (Temporal Cloud: `tcld namespace search-attributes add`)") from exc
        if exc.status is not RPCStatusCode.ALREADY_EXISTS:
            raise
    log.info("registered search attributes %s", ", ".join(sorted(wanted)))
