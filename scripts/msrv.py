#!/usr/bin/env python3
"""What can be checked of the declared MSRV (`rust-version` in Cargo.toml) without that toolchain.

This machine has one Rust toolchain and no rustup dist server, so the MSRV build itself cannot run
here. Two halves of it can:
- clippy's `incompatible_msrv` lint (on by default, run by .ci/run's clippy steps) fails on a standard
  library API stabilized after the declared version;
- this script fails when a dependency in Cargo.lock declares a `rust-version` above ours, which would
  make the declared MSRV a lie whatever our own code does.
Language features newer than the MSRV are not caught; a CI with rustup would build with that toolchain.
"""
import json
import subprocess
import sys


def version(text):
    parts = [int(p) for p in text.split(".")[:3]]
    return tuple(parts + [0] * (3 - len(parts)))


def main():
    metadata = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked"], check=True, capture_output=True, text=True
        ).stdout
    )
    members = set(metadata["workspace_members"])
    ours = {p["rust_version"] for p in metadata["packages"] if p["id"] in members and p.get("rust_version")}
    if len(ours) != 1:
        sys.exit(f"msrv.py: the workspace's crates declare {sorted(ours) or 'no'} rust-version; expected one")
    msrv = ours.pop()
    above = [
        f"{p['name']} {p['version']} needs Rust {p['rust_version']}"
        for p in metadata["packages"]
        if p["id"] not in members and p.get("rust_version") and version(p["rust_version"]) > version(msrv)
    ]
    if above:
        sys.exit(f"msrv.py: dependencies above the declared rust-version {msrv}:\n  " + "\n  ".join(above))
    print(f"msrv.py: no dependency declares a rust-version above {msrv}")


if __name__ == "__main__":
    main()
