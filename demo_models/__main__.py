"""``python -m demo_models train|finetune ...``: the demo-model tools (developers only).

- ``train``: retrain the shipped demo models with the users' trainer (``demo_models.train``)
- ``finetune``: the fine-tuning demonstration (``demo_models.finetune``)
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = ("train", "finetune")
    if not argv or argv[0] not in commands:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    if argv[0] == "train":
        from demo_models.train import main as command
    else:
        from demo_models.finetune import main as command
    return command(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
