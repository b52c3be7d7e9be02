"""Build the served snippet, attribution/static/snippet.js, from snippet/src/callpath.js.

The source is minified with terser, run through npx, so Node.js is needed here and only
here: the built file is committed, and neither the server nor the test suite needs Node.
Its first line is a licence/source comment carrying the sha256 of the source it was built
from; the test suite recomputes that hash to catch a source edit that was not rebuilt.

    python snippet/build.py           # rebuild (needs node and npx)
    python snippet/build.py --check   # exit 1 when the built file is out of date (no Node)
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "snippet" / "src" / "callpath.js"
TARGET = ROOT / "attribution" / "static" / "snippet.js"
TERSER = "terser@5.51.4"
HEADER = "/*! callpath (MIT) snippet/src/callpath.js sha256:{digest} */"
HEADER_RE = re.compile(r"^/\*! callpath \(MIT\) \S+ sha256:([0-9a-f]{64}) \*/$")

TERSER_ARGS = [
    "--ecma",
    "2017",
    "--compress",
    "passes=3,unsafe_arrows=true,pure_getters=true",
    "--mangle",
    "--format",
    "comments=false,ascii_only=true",
]


def source_digest(path: Path = SOURCE) -> str:
    """sha256 of the source with line endings normalised (a CRLF checkout hashes the same)."""
    text = path.read_bytes().replace(b"\r\n", b"\n")
    return hashlib.sha256(text).hexdigest()


def built_digest(path: Path = TARGET) -> str | None:
    """The source hash recorded in the built file's header line, if any."""
    try:
        first = path.read_text(encoding="utf-8").split("\n", 1)[0]
    except FileNotFoundError:
        return None
    match = HEADER_RE.match(first)
    return match.group(1) if match else None


def is_current() -> bool:
    return built_digest() == source_digest()


def gzip_size(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def minify(source: Path) -> str:
    npx = shutil.which("npx")
    if npx is None:
        sys.exit("build.py: npx (Node.js) is needed to rebuild the snippet")
    done = subprocess.run(
        [npx, "--yes", TERSER, str(source), *TERSER_ARGS],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def build() -> bytes:
    body = minify(SOURCE)
    out = (HEADER.format(digest=source_digest()) + "\n" + body + "\n").encode("utf-8")
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_bytes(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the build is current")
    args = parser.parse_args(argv)
    if args.check:
        if is_current():
            print(f"{TARGET.relative_to(ROOT)} is current")
            return 0
        print(f"{TARGET.relative_to(ROOT)} is stale: run python snippet/build.py", file=sys.stderr)
        return 1
    out = build()
    print(f"{TARGET.relative_to(ROOT)}: {len(out)} bytes, {gzip_size(out)} gzipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
