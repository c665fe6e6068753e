"""``python -m edge_wbc.training.worker HPARAMS_JSON OUT [DATA]``: one worker of ``--local-workers N``.

Started by :func:`edge_wbc.training.distributed.run_local_workers` with its TF_CONFIG; an
EdgeWBCError becomes one ``error:`` line and exit code 2, which the launcher reports.
"""

from __future__ import annotations

import json
import sys

from ..errors import EdgeWBCError


def worker_main(argv: list[str]) -> int:
    from . import models  # noqa: F401  (registers the builders)
    from .train import HParams, train

    try:
        hp = HParams(**json.loads(argv[0]))
        train(hp, argv[1], data=argv[2] if len(argv) > 2 and argv[2] else None, verbose=2)
    except EdgeWBCError as e:
        print(f"error: {e}", flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
