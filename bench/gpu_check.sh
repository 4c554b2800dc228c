#!/usr/bin/env bash
# One-GPU health check (issue 23): runs bench/gpu_check.py from the repository root under an 8-minute
# timeout, passing every argument on (see `bench/gpu_check.py --help`); results go to
# bench/results/gpu_<gpu name>.md, rewritten after every section.
#
#   bench/gpu_check.sh                       # train, ddp and deblur sections on the default CUDA device
#   bench/gpu_check.sh --dry-run             # the plan only
#   PYTHON=.venv/bin/python bench/gpu_check.sh --sections deblur
#
# Exit status: that of gpu_check.py (0 all passed, 1 something FAILED, 2 bad option / no CUDA), or 124
# when the timeout ended it (the results file then holds the sections finished before).
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
# the project's packages import from the checkout, installed or not
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec timeout --kill-after=20s 8m "${PYTHON:-python}" bench/gpu_check.py "$@"
