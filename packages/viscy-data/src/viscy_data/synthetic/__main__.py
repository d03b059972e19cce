"""``python -m viscy_data.synthetic``: write a synthetic plate from the command line."""

from viscy_data.synthetic._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
