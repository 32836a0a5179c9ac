#!/usr/bin/env bash
# The README's lead picture: a beta x threshold sweep of gsi next to rsd, soft_bon_small and
# soft_bon_big on the default toy world, then its report (plots with 95 % intervals).
#
#   make sweep                               # = bash launchers/toy_sweep.sh
#   LIMIT=500 bash launchers/toy_sweep.sh    # more problems (default 200)
#
# Runs land in outputs/toy_sweep/ (one directory per configuration, so a second call resumes
# or skips finished ones); the report goes to outputs/toy_sweep/report/ (report.md, results.csv,
# comparison.csv, PNG plots). Every job runs in this process's machine, one after another.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
LIMIT=${LIMIT:-200}
BETAS=${BETAS:-0.5,2,20}
THRESHOLDS=${THRESHOLDS:-0.1,0.3,0.5,0.7,0.9}
SWEEP_DIR=${SWEEP_DIR:-outputs/toy_sweep}
common=(limit="$LIMIT" progress=false tracking=none hydra.sweep.dir="$SWEEP_DIR")
export HF_HUB_OFFLINE=1

echo "toy_sweep: gsi, beta in {$BETAS} x threshold in {$THRESHOLDS}"
"$PY" run.py -m method=gsi beta="$BETAS" threshold="$THRESHOLDS" "${common[@]}"
echo "toy_sweep: rsd, threshold in {$THRESHOLDS} (raw reward, beta 20)"
"$PY" run.py -m method=rsd threshold="$THRESHOLDS" "${common[@]}"
echo "toy_sweep: the soft best-of-n baselines and the single models"
"$PY" run.py -m method=soft_bon_small,soft_bon_big,small,big "${common[@]}"
"$PY" -m analysis.report "$SWEEP_DIR" --out "$SWEEP_DIR/report"
echo "toy_sweep: report in $SWEEP_DIR/report/report.md"
