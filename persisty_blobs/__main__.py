"""``python -m persisty_blobs``: the ``persisty-blobs`` command."""

from .cli import main

if __name__ == "__main__":
    main()
