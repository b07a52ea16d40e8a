"""python3 -m xent verify module:function [options]: xent.verify from the command line.

Exit status 0 when accepted, 1 when rejected, 2 for a usage error (as `xent verify`).
"""

import argparse
import sys

from ._verify import _TIERS, verify


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m xent")
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="the property suite and the accuracy sweep on a Python cross-entropy")
    v.add_argument("function", help="module:function, with torch.nn.functional.cross_entropy's signature")
    v.add_argument("--tier", default="standard", choices=_TIERS)
    v.add_argument("--property", action="append", dest="properties", help="run only this property (repeatable)")
    v.add_argument("--seed", type=int)
    v.add_argument("--scale", type=float, default=1.0, help="multiplies every property's case budget")
    v.add_argument("--timeout", type=float, help="seconds per property before a hang is a failure")
    v.add_argument("--no-sweep", dest="sweep", action="store_false")
    v.add_argument("--known-deviations", choices=("torch", "none"),
                   help="count this peer's documented deviations apart (default: torch for "
                        "torch.nn.functional:cross_entropy itself)")
    a = parser.parse_args(argv)
    try:
        verdict = verify(a.function, tier=a.tier, properties=a.properties, seed=a.seed, scale=a.scale,
                         timeout=a.timeout, sweep=a.sweep, known_deviations=a.known_deviations)
    except (ValueError, FileNotFoundError) as e:
        print(f"python3 -m xent: error: {e}", file=sys.stderr)
        return 2
    return 0 if verdict.accepted else 1


if __name__ == "__main__":
    sys.exit(main())
