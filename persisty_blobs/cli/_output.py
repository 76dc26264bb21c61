"""How listings print: a key a line, ``--long`` columns, or ``--json`` (one JSON object a
line, so a script can read a listing of any length as it streams)."""

from __future__ import annotations

import json
from typing import Any

import click

from ..http_wire import item_to_json
from ..item import DataItem

__all__ = ["echo_json", "item_line", "json_option", "namespace_option"]

json_option = click.option(
    "--json", "as_json", is_flag=True, help="One JSON object a line, for scripts."
)


namespace_option = click.option(
    "--namespace",
    "-n",
    default="",
    metavar="NS",
    help="Use namespace NS of the store (default: the default namespace).",
)


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, sort_keys=True))


def item_line(item: DataItem, *, long: bool, as_json: bool) -> str:
    if as_json:
        return json.dumps(item_to_json(item), ensure_ascii=False, sort_keys=True)
    if not long:
        return item.key
    updated = item.updated_at.strftime("%Y-%m-%d %H:%M:%S")
    flags = ",".join(sorted(flag.value for flag in item.flags)) or "-"
    return f"{item.size:>12}  {updated}  {item.content_type:<24}  {flags:<10}  {item.key}"
