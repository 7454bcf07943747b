"""`--processes N`: the job's stages in N writer processes, every key in exactly one.

Each writer process runs the same `Job` as a one-process load, on its own event loop,
and takes the records whose partition key hashes to it, in input order: all the
operations on one key pass through one process and one batcher in input order, so
last-write-wins holds exactly as in one process, however far apart the duplicates.

How the records reach the writers (the router):
- JSON-lines files: every writer reads the whole input itself, numbering every line
  as one reader would, and keeps the lines whose key hashes to it (`routing.KeyPeek`
  reads only the key); the main process checks the first record and merges.
- standard input (readable once) and other formats: the main process reads, and
  ships raw JSON lines or parsed records to the writers over pipes, by the same hash.

Writers report to the main process twice a second (`child.WriterReport`): their
counters, latency histogram, the lowest record they have not finished and how far
they have read. The main process (`coordinator.Coordinator`) merges them into the
progress line, the report and the checkpoint, whose watermark is the lowest
unfinished record over all writers and the pipes between.
"""

from loader.parallel.coordinator import load_parallel
from loader.parallel.routing import KeyPeek, route

__all__ = ["KeyPeek", "load_parallel", "route"]
