"""`python -m bytepiece`: the same command line as the `bytepiece` script."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="bytepiece")
