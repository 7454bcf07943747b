"""A deterministic product catalog (~500 bytes an item) in the tutorial's single-table
design: PK=PRODUCT#<sku>, SK=DETAILS, GSI1PK=CATEGORY#<category>, GSI1SK=PRODUCT#<sku>.

    python -m benchmarks.catalog 100000 catalog.jsonl      # or .csv, or .jsonl.gz
"""

from __future__ import annotations

import csv
import gzip
import json
import random
import sys
from collections.abc import Iterator
from typing import IO, Any

CATEGORIES = {
    "electronics": ["TechPro", "Voltix", "Nimbus", "Arcway"],
    "home": ["Hearth&Co", "Lumen", "Oakline"],
    "outdoor": ["TrailMark", "Summit", "Riverstone"],
    "books": ["Pagewise", "Inkwell"],
    "toys": ["Blocksy", "Funforge", "Kiddo"],
    "kitchen": ["Copperleaf", "Chef's Mark", "Panora"],
}
NOUNS = [
    "Laptop",
    "Headset",
    "Lamp",
    "Tent",
    "Novel",
    "Kettle",
    "Drone",
    "Chair",
    "Backpack",
    "Blender",
    "Speaker",
    "Puzzle",
    "Monitor",
    "Skillet",
    "Jacket",
    "Camera",
]
ADJECTIVES = ["Pro", "Ultra", "Compact", "Wireless", "Classic", "Smart", "Eco", "Deluxe", "Mini"]
WORDS = [
    "durable",
    "lightweight",
    "premium",
    "quiet",
    "fast",
    "ergonomic",
    "waterproof",
    "rechargeable",
    "modular",
    "handcrafted",
    "recycled",
    "foldable",
    "adjustable",
    "portable",
    "versatile",
]


def products(count: int, seed: int = 42) -> Iterator[dict[str, Any]]:
    """`count` catalog items, the same ones for the same seed."""
    rng = random.Random(seed)
    categories = list(CATEGORIES)
    for number in range(1, count + 1):
        category = categories[number % len(categories)]
        noun = rng.choice(NOUNS)
        sku = f"{noun.lower()}-{number:08d}"
        cents = rng.randrange(199, 250_000)
        yield {
            "PK": f"PRODUCT#{sku}",
            "SK": "DETAILS",
            "GSI1PK": f"CATEGORY#{category}",
            "GSI1SK": f"PRODUCT#{sku}",
            "sku": sku,
            "name": f"{rng.choice(ADJECTIVES)} {noun} {number % 997}",
            "category": category,
            "brand": rng.choice(CATEGORIES[category]),
            "price": f"{cents // 100}.{cents % 100:02d}",
            "stock": rng.randrange(0, 5000),
            "rating": f"{rng.randrange(10, 50) / 10:.1f}",
            "active": rng.random() > 0.05,
            "tags": rng.sample(WORDS, 3),
            "description": " ".join(rng.choices(WORDS, k=rng.randrange(20, 40))),
            "dimensions": {
                "w": rng.randrange(1, 200),
                "h": rng.randrange(1, 200),
                "d": rng.randrange(1, 200),
                "unit": "cm",
            },
        }


def _open(path: str) -> IO[str]:
    if path.endswith(".gz"):
        return gzip.open(path, "wt", encoding="utf-8", newline="")
    return open(path, "w", encoding="utf-8", newline="")


def write_jsonl(path: str, items: Iterator[dict[str, Any]]) -> int:
    """Write items as JSON Lines; prices stay exact decimal text (as raw JSON numbers)."""
    count = 0
    with _open(path) as out:
        for item in items:
            line = json.dumps(item, separators=(",", ":"))
            # Prices and ratings are decimals: write them as JSON numbers, not strings.
            for field in ("price", "rating"):
                line = line.replace(f'"{field}":"{item[field]}"', f'"{field}":{item[field]}')
            out.write(line + "\n")
            count += 1
    return count


CSV_COLUMNS = [
    "PK",
    "SK",
    "GSI1PK",
    "GSI1SK",
    "sku",
    "name",
    "category",
    "brand",
    "price",
    "stock",
    "rating",
    "active",
    "description",
]
CSV_TYPES = {"price": "N", "stock": "N", "rating": "N", "active": "BOOL"}


def write_csv(path: str, items: Iterator[dict[str, Any]]) -> int:
    """Write the flat columns as CSV; `CSV_TYPES` are the --csv-type flags that load it."""
    count = 0
    with _open(path) as out:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for item in items:
            writer.writerow(
                [str(item[c]).lower() if c == "active" else item[c] for c in CSV_COLUMNS]
            )
            count += 1
    return count


def main() -> None:
    count, path = int(sys.argv[1]), sys.argv[2]
    write = write_csv if ".csv" in path else write_jsonl
    print(f"wrote {write(path, products(count)):,} items to {path}")


if __name__ == "__main__":
    main()
