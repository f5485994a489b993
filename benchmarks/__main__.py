"""python -m benchmarks run|seed|list CONFIG [...] | report RESULTS_DIR [...]"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="Resumable benchmark campaigns for ghga-cli."
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run what is missing of a campaign, then write its report")
    run.add_argument("config", help="a campaign file, e.g. configs/benchmarks/quick.toml")
    run.add_argument(
        "--results", help="results dir (default: the config's, else ./bench-results/NAME)"
    )
    run.add_argument(
        "--work-dir",
        help="scratch dir for files and servers "
        "(default: the config's, else /var/tmp/ghga-tasks-bench)",
    )
    run.add_argument(
        "--only",
        help="run only the runs whose key matches this regular expression, "
        "e.g. '__(1|4)GiB__.*__r1$'",
    )
    run.add_argument(
        "--rerun-failed",
        action="store_true",
        help="delete results with verified=false first, so they run again",
    )
    run.add_argument("--no-report", action="store_true")
    seed = sub.add_parser(
        "seed",
        help="seed the download fixtures of the runs left and keep the store for `run`",
    )
    seed.add_argument("config")
    seed.add_argument("--results")
    seed.add_argument("--work-dir")
    seed.add_argument("--only", help="only the runs whose key matches this regular expression")
    rep = sub.add_parser("report", help="write REPORT.md, results.csv and plots from a results dir")
    rep.add_argument("results_dir")
    rep.add_argument("--out", help="output dir (default: RESULTS_DIR/report)")
    lst = sub.add_parser("list", help="print the runs of a campaign and whether each is done")
    lst.add_argument("config")
    lst.add_argument("--results")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    if args.cmd == "report":
        from .report import write_report

        out = write_report(Path(args.results_dir), Path(args.out) if args.out else None)
        print(out)
        return 0
    if args.cmd == "list":
        from .config import load

        camp = load(args.config, results_dir=args.results)
        for spec in camp.runs:
            print(("done " if camp.done(spec.key) else "todo ") + spec.key)
        return 0
    from .campaign import CampaignFailed, CampaignStopped
    from .campaign import run as run_campaign
    from .campaign import seed as seed_campaign

    failed = {"seed": "seeding failed", "run": "campaign incomplete"}[args.cmd]
    try:  # the campaign's errors and their exit codes, for both commands
        if args.cmd == "seed":
            seeded = seed_campaign(args.config, args.results, args.work_dir, args.only)
        else:
            info = run_campaign(
                args.config, args.results, args.work_dir, args.only, args.rerun_failed
            )
    except CampaignStopped as exc:
        print(str(exc), file=sys.stderr)
        return 3
    except CampaignFailed as exc:
        print(f"{failed}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    if args.cmd == "seed":
        for key, ids in seeded.items():
            print(f"{key}: {len(ids)} fixtures ({', '.join(ids)})")
        if not seeded:
            print("no download runs left to seed", file=sys.stderr)
        return 0
    done = info["runs"] - info["left"]
    print(f"results: {info['results_dir']} ({done} of {info['runs']} runs done, {info['status']})")
    if not args.no_report:
        from .report import write_report

        print(f"report: {write_report(Path(info['results_dir']))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
