"""Process tuning for workers: the collector, and the SDK's payload passes."""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
import temporalio.bridge.worker as _bridge_worker
from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.converter import PayloadCodec
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import PollerBehaviorSimpleMaximum, Worker
from temporalio.worker.workflow_sandbox import _runner

from backorders import runtime
from backorders.settings import Settings
from backorders.temporal import DATA_CONVERTER


def test_a_worker_freezes_what_it_keeps_and_collects_its_young_objects_less_often():
    before = gc.get_threshold()
    try:
        runtime.tune_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (runtime.GC_YOUNG_THRESHOLD, *before[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


# --- payload passes -------------------------------------------------------------------


@activity.defn(name="echo_upper")
async def _echo_upper(text: str) -> str:
    return text.upper()


@workflow.defn(name="PayloadPasses")
class _PayloadPasses:
    @workflow.run
    async def run(self, text: str) -> str:
        return await workflow.execute_activity(
            _echo_upper, text, start_to_close_timeout=timedelta(seconds=10))


class _MarkingCodec(PayloadCodec):
    """Wraps each payload in one marked as its own, so history shows whether it ran."""

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [Payload(metadata={"encoding": b"binary/marked"}, data=p.SerializeToString())
                for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            inner = Payload()
            inner.ParseFromString(p.data)
            out.append(inner)
        return out


async def _run_payload_passes(client: Client) -> tuple[str, list[Payload]]:
    runtime.skip_idle_payload_passes()
    async with Worker(client, task_queue="payload-passes", workflows=[_PayloadPasses],
                      activities=[_echo_upper]):
        handle = await client.start_workflow(_PayloadPasses.run, "fragile", id="passes",
                                             task_queue="payload-passes")
        result = await handle.result()
    history = await handle.fetch_history()
    scheduled = [e.activity_task_scheduled_event_attributes.input.payloads[0]
                 for e in history.events if e.HasField("activity_task_scheduled_event_attributes")]
    return result, scheduled


async def test_a_worker_without_a_codec_skips_the_sdks_idle_payload_passes(
    temporal_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch,
):
    contexts = 0
    original = _runner._Instance.get_serialization_context

    def counting(self: Any, command_info: Any) -> Any:
        nonlocal contexts
        contexts += 1
        return original(self, command_info)

    monkeypatch.setattr(_runner._Instance, "get_serialization_context", counting)
    result, scheduled = await _run_payload_passes(temporal_env.client)
    assert result == "FRAGILE"
    assert scheduled[0].metadata["encoding"] == b"json/plain"
    assert contexts == 0  # every pass works this out per payload, in the sandbox


async def test_a_worker_with_a_codec_still_encodes_and_decodes_every_payload(
    temporal_env: WorkflowEnvironment,
):
    config = temporal_env.client.config()
    config["data_converter"] = dataclasses.replace(DATA_CONVERTER,
                                                   payload_codec=_MarkingCodec())
    result, scheduled = await _run_payload_passes(Client(**config))
    assert result == "FRAGILE"  # decoded on the way into the workflow and back out
    assert scheduled[0].metadata["encoding"] == b"binary/marked"  # the workflow's command


def test_skipping_the_idle_passes_is_done_once_however_often_it_is_asked():
    runtime.skip_idle_payload_passes()
    first = (_bridge_worker.decode_activation, _bridge_worker.encode_completion)
    runtime.skip_idle_payload_passes()
    assert (_bridge_worker.decode_activation, _bridge_worker.encode_completion) == first


async def _running_worker_config(temporal_env, db, settings, **update) -> dict[str, Any]:
    """The options a worker built from these settings runs with."""
    from tests.support import start_worker  # not at the top: this module has a workflow

    changed = settings.model_copy(update=update)
    async with start_worker(temporal_env.client, db, changed, relay=False) as running:
        return running.worker.config()


async def test_how_long_a_task_waits_for_the_worker_caching_its_workflow_is_configurable(
        temporal_env, db, settings):
    """Longer spares full replays elsewhere under a burst; shorter resumes a killed
    worker's lines sooner (see `Settings.worker_sticky_queue_timeout_seconds`)."""
    assert Settings.model_fields["worker_sticky_queue_timeout_seconds"].default == 30.0
    config = await _running_worker_config(temporal_env, db, settings,
                                          worker_sticky_queue_timeout_seconds=5.0)
    assert config["sticky_queue_schedule_to_start_timeout"] == timedelta(seconds=5)


async def test_a_worker_keeps_as_many_workflow_task_polls_open_as_configured(
        temporal_env, db, settings):
    """The SDK's five left a thousand-line burst's tasks queued on the server until their
    sticky queues timed out (see `Settings.worker_max_workflow_task_polls`)."""
    assert Settings.model_fields["worker_max_workflow_task_polls"].default == 20
    config = await _running_worker_config(temporal_env, db, settings,
                                          worker_max_workflow_task_polls=32)
    assert config["workflow_task_poller_behavior"] == PollerBehaviorSimpleMaximum(32)
