"""``python -m grm_ros.training train|recipe|synth ...``: the console scripts without installing the package
(and the module torchrun launches: ``torchrun --nproc_per_node 4 -m grm_ros.training train ...``)."""

import sys

from grm_ros.training.cli import recipe_main, synth_main, train_main

COMMANDS = {"train": train_main, "recipe": recipe_main, "synth": synth_main}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python -m grm_ros.training {{{'|'.join(COMMANDS)}}} [options] (--help for each)")
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
