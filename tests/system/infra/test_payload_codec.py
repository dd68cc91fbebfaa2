"""Payload encryption: what Temporal stores is ciphertext, the codec endpoint decodes it only
for a caller with the right token, and a rotated key list still reads old histories. The
keys, the settings and the codec endpoint without a server: ``tests/unit/infra``.

The histories are written on the session's real Temporal dev server by a small workflow
whose activity takes a whole order (its address and payment token carry a marker).
"""

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format
from pydantic import SecretStr
from temporalio.api.common.v1 import Payloads
from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import Worker

from contracts.activities import Order, ShippingAddress
from contracts.events.common import OrderLine
from infra.config.payload_codec import (
    ENCRYPTED_ENCODING,
    KEY_ID_METADATA,
    PayloadDecryptionError,
    data_converter,
)
from infra.config.settings import Settings
from infra.engines.temporal_server import TemporalDevServer
from ops.replay import replay_histories
from tests.support.codec import K1, K2, READER, TOKEN, codec_api, payloads_body
from tests.support.codec_workflow import DescribeOrder, describe_order
from tests.support.temporal_history import history_payloads, raw_history


def _converter(keys: str) -> DataConverter:
    return data_converter(Settings(payload_encryption=True, payload_keys=SecretStr(keys)))


def _order(marker: str) -> Order:
    return Order(
        order_id=f"codec-{uuid.uuid4().hex[:12]}",
        customer_id="cust-codec",
        items=[OrderLine(sku="SKU-1", quantity=1, unit_price_minor=100)],
        currency="EUR",
        payment_token=f"tok_{marker}",
        shipping_address=ShippingAddress(
            country="DE", name=f"Ada {marker}", line1=f"{marker} Street 1", postal_code="10115"
        ),
    )


@dataclass(frozen=True)
class Run:
    """One finished run of the test workflow and its history as the server keeps it."""

    workflow_id: str
    marker: str
    history: WorkflowHistory


async def _run(server: TemporalDevServer, converter: DataConverter, raw: Client) -> Run:
    """Run the workflow with ``converter``; fetch its history with ``raw`` (no codec)."""
    client = await Client.connect(
        server.address, namespace=server.namespace, data_converter=converter
    )
    marker = f"MARKER{uuid.uuid4().hex}"
    task_queue = f"codec-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[DescribeOrder],
        activities=[describe_order],
    ):
        handle = await client.start_workflow(
            DescribeOrder.run, _order(marker), id=f"codec-{uuid.uuid4()}", task_queue=task_queue
        )
        assert marker in await handle.result()
    history = await raw.get_workflow_handle(handle.id).fetch_history()
    return Run(handle.id, marker, history)


@pytest.fixture(scope="module")
async def k1_run(temporal_server: TemporalDevServer, temporal_client: Client) -> Run:
    """A run written with key ``k1`` alone."""
    return await _run(temporal_server, _converter(f"k1:{K1}"), temporal_client)


# --- What Temporal stores ---------------------------------------------------------------


async def test_temporal_stores_only_ciphertext(k1_run: Run) -> None:
    """Workflow input, activity input and result, workflow result: all encrypted with k1."""
    payloads = history_payloads(k1_run.history)

    assert len(payloads) == 4
    for payload in payloads:
        assert payload.metadata["encoding"] == ENCRYPTED_ENCODING
        assert payload.metadata[KEY_ID_METADATA] == b"k1"
    raw = raw_history(k1_run.history)
    assert k1_run.marker.encode() not in raw
    assert b"10115" not in raw


async def test_encryption_off_stores_plain_json(
    temporal_server: TemporalDevServer, temporal_client: Client
) -> None:
    """The same workflow without encryption: the marker is in the history (the control)."""
    run = await _run(temporal_server, data_converter(Settings()), temporal_client)

    assert {p.metadata["encoding"] for p in history_payloads(run.history)} == {b"json/plain"}
    assert run.marker.encode() in b"".join(e.SerializeToString() for e in run.history.events)


# --- The codec endpoint -------------------------------------------------------------------


@pytest.fixture
async def codec_http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The API with encryption on and the codec tokens (``tests.support.codec.codec_api``)."""
    async with codec_api(tmp_path) as http:
        yield http


async def test_the_codec_endpoint_decodes_only_with_the_right_token(
    k1_run: Run, codec_http: httpx.AsyncClient
) -> None:
    body = payloads_body(history_payloads(k1_run.history))
    headers = {"X-Namespace": "default"}

    missing = await codec_http.post("/codec/decode", json=body, headers=headers)
    wrong = await codec_http.post(
        "/codec/decode", json=body, headers={**headers, "Authorization": "Bearer nope"}
    )
    unscoped = await codec_http.post(
        "/codec/decode", json=body, headers={**headers, "Authorization": f"Bearer {READER}"}
    )
    right = await codec_http.post(
        "/codec/decode", json=body, headers={**headers, "Authorization": f"Bearer {TOKEN}"}
    )

    assert (missing.status_code, wrong.status_code, unscoped.status_code) == (401, 401, 403)
    assert "codec:decode" in unscoped.json()["detail"]
    assert k1_run.marker not in missing.text + wrong.text + unscoped.text
    assert right.status_code == 200, right.text
    decoded = json_format.ParseDict(right.json(), Payloads()).payloads
    assert [p.metadata["encoding"] for p in decoded] == [b"json/plain"] * 4
    assert all(k1_run.marker.encode() in p.data for p in decoded)


# --- Rotation -------------------------------------------------------------------------------


async def test_a_rotated_key_list_reads_old_histories_and_writes_with_the_new_key(
    k1_run: Run, temporal_server: TemporalDevServer, temporal_client: Client
) -> None:
    rotated = _converter(f"k2:{K2},k1:{K1}")
    client = await Client.connect(
        temporal_server.address, namespace=temporal_server.namespace, data_converter=rotated
    )

    result = await client.get_workflow_handle(k1_run.workflow_id).result()
    report = await replay_histories(
        [k1_run.history], workflows=[DescribeOrder], data_converter=rotated
    )
    new_run = await _run(temporal_server, rotated, temporal_client)

    assert k1_run.marker in result
    assert report.ok, report.summary()
    assert {p.metadata[KEY_ID_METADATA] for p in history_payloads(new_run.history)} == {b"k2"}


async def test_without_the_old_key_an_old_history_fails_naming_the_key(
    k1_run: Run, temporal_server: TemporalDevServer
) -> None:
    k2_only = _converter(f"k2:{K2}")
    client = await Client.connect(
        temporal_server.address, namespace=temporal_server.namespace, data_converter=k2_only
    )

    with pytest.raises(PayloadDecryptionError, match=r"key id 'k1'.*SAGA_PAYLOAD_KEYS"):
        await client.get_workflow_handle(k1_run.workflow_id).result()
    report = await replay_histories(
        [k1_run.history], workflows=[DescribeOrder], data_converter=k2_only
    )
    (outcome,) = report.failures
    assert "key id 'k1'" in (outcome.error or ""), outcome.error
