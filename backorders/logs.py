from __future__ import annotations

import logging


def setup(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # The SDK's own worker chatter is noise at INFO; keep its warnings.
    logging.getLogger("temporalio.worker._workflow_instance").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
