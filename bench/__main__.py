"""``python -m bench [SUITE ...] [--size-mib N] [--repeats N]``: suites are listed below."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from . import attachments, crypto, directory, http, s3, sql, sync
from ._harness import Row, report

SUITES: dict[str, Callable[[int, int], list[Row]]] = {
    "directory": directory.run,
    "sql": sql.run,
    "s3": s3.run,
    "crypto": crypto.run,
    "http": http.run,
    "sync": sync.run,
    "attachments": attachments.run,
}
#: Suites whose data sets are their issue's, whatever ``--size-mib`` says.
FIXED_SIZES = frozenset({"sync", "attachments"})


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("suites", nargs="*", default=["all"], choices=[*SUITES, "all"])
    parser.add_argument("--size-mib", type=int, default=1024, help="item size (default 1 GiB)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each side (median)")
    options = parser.parse_args()
    names = list(SUITES) if "all" in options.suites else options.suites
    for name in names:
        sizes = "its own data sets" if name in FIXED_SIZES else f"{options.size_mib} MiB"
        print(f"\n## {name}: {sizes}, median of {options.repeats} runs each\n")
        rows = SUITES[name](options.size_mib * 2**20, options.repeats)
        if rows:  # the sync suite prints and writes its own table
            report(name, rows)


if __name__ == "__main__":
    main()
