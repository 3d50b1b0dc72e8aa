"""``offsite landscape``: loss and accuracy on the line between two models or the plane through three."""

from __future__ import annotations

import argparse

import torch

from ..errors import OffsiteError
from ..landscape import DEFAULTS, LANDSCAPE_FILE, BASE_POINT, LandscapeConfig, landscape
from ..report.table import format_table

EPILOG = f"""\
points (--points): {BASE_POINT!r} (BASE itself, θ_init), a model directory (a plugged-in model is one), a finished
  fine-tuning run (its adapter plugged into BASE; a run that trained every weight gives its model) or an adapter file.
  Two points P0,P1: the line P0 + x·(P1 − P0), x from {DEFAULTS[1].low} to {DEFAULTS[1].high} ({DEFAULTS[1].size} points).
  Three points P0,P1,P2: the plane P0 + a·(P1 − P0) + b·(P2 − P0), directions neither orthogonalised nor
  normalised, a and b from {DEFAULTS[2].low} to {DEFAULTS[2].high} ({DEFAULTS[2].size}×{DEFAULTS[2].size} points).
  Every parameter that differs between the points is interpolated, in place on one copy of BASE.

the paper's Figure 6 (CRaSh, all parameters of whole models):
  offsite landscape MODEL --points RUNS/full,RUNS/crash --grid 25 --range 0,1 --out DIR  the 1-D curve
  offsite landscape MODEL --points base,RUNS/full,RUNS/crash --grid 50 --range=-4,4 --labels "Init,Full FT,CRaSh"
                                                                                        the 2-D surface (a GPU job)

DIR gets {LANDSCAPE_FILE} (every grid point's loss and accuracy, the points, the settings and the tensors that
  differ), written after each grid point, and line.png or contour.png and surface.png once the grid is done.
  Stopped? Run the same command again: grid points already computed are kept (also on a changed --grid/--range)."""


def float_pair(text: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH (e.g. --range=-4,4), got {text!r}") from None
    return low, high


def names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = LandscapeConfig(base="", points=("", ""))
    parser = subparsers.add_parser(
        "landscape",
        help="loss and accuracy on the line between two models or the plane through three (mode connectivity)",
        description="Interpolate every parameter that differs between the points and score answer-token loss and "
        "accuracy at each grid point; draw the curve, or the filled contour and 3-D surface, with the points marked.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("base", metavar="BASE", help="the model the points belong to (θ_init): alias or path")
    parser.add_argument("--points", required=True, type=names, help="P0,P1 (a line) or P0,P1,P2 (a plane)")
    parser.add_argument("--labels", type=names, help="a label per point for the figures (default: Init for base, "
                        "else the directory name)")
    parser.add_argument("--task", default=defaults.task, help="task name or .jsonl/text file (default %(default)s)")
    parser.add_argument("--split", default=defaults.split, help="default %(default)s")
    parser.add_argument("--limit", type=int, default=defaults.limit, help="first N examples (default %(default)s)")
    parser.add_argument("--grid", type=int, help=f"points per axis (default: {DEFAULTS[1].size} on a line, "
                        f"{DEFAULTS[2].size} on a plane)")
    parser.add_argument("--range", type=float_pair, metavar="LOW,HIGH", help="span of every axis (write "
                        "--range=-4,4 when LOW is negative)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="sequences per forward pass "
                        "(default %(default)s)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="torch device (default: %(default)s)")
    parser.add_argument("--stop-after", type=int, metavar="N", help="compute at most N new grid points, then stop "
                        "(run again to continue)")
    parser.add_argument("--out", required=True, metavar="DIR", help="directory to write (and continue)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    if args.stop_after is not None and args.stop_after < 1:
        raise OffsiteError(f"--stop-after must be at least 1, got {args.stop_after}")
    config = LandscapeConfig(base=args.base, points=args.points, task=args.task, split=args.split, limit=args.limit,
                             grid=args.grid, range=args.range, labels=args.labels, batch_size=args.batch_size)
    record = landscape(config, args.out, device=args.device, stop_after=args.stop_after)
    scores = {tuple(e["coordinates"]): e for e in record["evaluations"]}
    rows = [{"point": p["label"], "coordinates": ",".join(f"{c:g}" for c in p["coordinates"]),
             **{k: v for k, v in scores.get(tuple(p["coordinates"]), {}).items() if k != "coordinates"}}
            for p in record["points"]]
    print(format_table(rows, list(dict.fromkeys(k for row in rows for k in row))))
    losses = [e["loss"] for e in record["evaluations"]]
    if losses:
        print(f"{len(losses)} grid points, loss {min(losses):.4f} to {max(losses):.4f}")
    if record["complete"]:
        print(f"wrote {args.out}/{LANDSCAPE_FILE} and its figures")
    else:
        print(f"stopped; run the same command again to continue ({args.out}/{LANDSCAPE_FILE} keeps what is done)")
