"""`python -m raysurr.experiment`: the same as `raysurr experiment` (raysurr/commands/experiment.py).

Importing this module makes `raysurr.experiment` this module rather than the function `raysurr.api.experiment`;
calling it calls that function, so `raysurr.experiment(config)` works whichever one the name holds.
"""

import sys
import types

from raysurr.commands import run_command


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from raysurr.api import experiment

        return experiment(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    sys.exit(run_command("experiment", prog="raysurr.experiment"))
