from __future__ import annotations

import logging

from temporalio import activity, workflow


def setup(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # Our messages already name the line and order; the SDK's appended info dict is noise
    # in a terminal (it stays available to structured handlers through `extra`).
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False
    logging.getLogger("httpx").setLevel(logging.WARNING)
