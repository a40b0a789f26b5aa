"""Entry point of each process ``retcore <job> --nproc N`` starts under ``torchrun``.

The job's arguments travel in ``RETCORE_RANK_ARGV`` (JSON) rather than on torchrun's command line:
torchrun's own parser would read an option such as ``--run`` as an abbreviation of its
``--run-path`` and stop.
"""
from __future__ import annotations

import json
import os
import sys


def main() -> None:
    from jobs.cli import app

    argv = json.loads(os.environ["RETCORE_RANK_ARGV"])
    sys.argv = ["retcore", *argv]
    app(args=argv, prog_name="retcore")


if __name__ == "__main__":
    main()
