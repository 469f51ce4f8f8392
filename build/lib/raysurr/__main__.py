"""`python -m raysurr COMMAND ...`: the same as the `raysurr` console script."""

from raysurr.commands import console

if __name__ == "__main__":
    console()
