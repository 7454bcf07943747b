"""Records → DynamoDB: exact numbers, DynamoDB's value rules, item sizes, WCU and keys.

Item sizes follow "DynamoDB item sizes and formats" in the developer guide, with the
number rule made exact. The package, each module one concern, lower ones first (a
module imports only from those above it):

- `limits`: CodecError, the 400 KB item, write units, string sizes;
- `numbers`: `Num` (a JSON number's exact text), the number rules and sizes, and
  `normal_number`, the one text of a number's value, that keys, sets, comparisons
  and routing all compare;
- `parse`: JSON text → values with exact numbers, and the reasons for refusals;
- `typed`: DynamoDB JSON checked, and sized;
- `plain`: plain JSON → AttributeValues and sizes (the general path), back again
  (`to_plain`), and items compared as DynamoDB compares them (`same_item`);
- `compiled`: the same conversion, compiled per record shape (the fast path);
- `keys`: a table's key schema, the key of an item, the WCU of a put;
- `wire`: a record → a checked `Write`, and its request as the bytes sent.

Import from here (`from loader.codec import encode`); underscore names are shared
between the package's modules only.
"""

from __future__ import annotations

from loader.codec.keys import Index, KeySchema
from loader.codec.limits import MAX_ITEM_BYTES, CodecError, MissingKey, check_size, wcu
from loader.codec.numbers import Num, normal_number, number_size
from loader.codec.parse import parse_json
from loader.codec.plain import AttributeValue, Item, from_plain, same_item, to_plain
from loader.codec.typed import typed_size
from loader.codec.wire import Request, Write, encode, put_entry

__all__ = [
    "MAX_ITEM_BYTES",
    "AttributeValue",
    "CodecError",
    "Index",
    "Item",
    "KeySchema",
    "MissingKey",
    "Num",
    "Request",
    "Write",
    "check_size",
    "encode",
    "from_plain",
    "normal_number",
    "number_size",
    "parse_json",
    "put_entry",
    "same_item",
    "to_plain",
    "typed_size",
    "wcu",
]
