#!/bin/sh
# On the OFF-SITE host, never on the backup host: retention of one off-site repository, run on its folder
# directly (not through the append-only server), with a restic key of the off-site host's own
# (`restic key add` once; `restic key remove` revokes it). Usage: cluster-backup-offsite-retention.sh /srv/restic/far
set -eu
repo=${1:?usage: $0 <repository folder>}
export RESTIC_REPOSITORY="$repo"
export RESTIC_PASSWORD_FILE=${RESTIC_PASSWORD_FILE:-/etc/restic-offsite/key}   # mode 0600, owner restic
# Stale locks only (a copy killed mid-way leaves one; a running copy's lock stays, and forget waits for it).
restic unlock
# VM image sets: per VM and disk (grouped by host and path: <vm>/<disk>.raw, <vm>/manifest.json), the newest
# 4, one per week for 8 weeks, one per month for a year. A SUPIM day is a path of its own: this keeps it.
restic forget --group-by host,paths --keep-last 4 --keep-weekly 8 --keep-monthly 12
# SUPIM days: each day is its own path; keep every day copied in the last 400 days.
restic forget --tag kind=supim-day --group-by '' --keep-within 400d
restic prune --max-unused 5%
# 1/12 of the data read back per weekly run, by ISO week (all of it every 12 weeks); structure every time.
restic check --read-data-subset="$(( $(date +%-V) % 12 + 1 ))/12"
