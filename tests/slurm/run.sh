#!/usr/bin/env bash
# make test-slurm: a real one-node SLURM cluster on this machine (slurmctld, slurmd, slurmdbd over MariaDB,
# munge; two fake GPUs), the reduced study submitted through the project's own `--profile slurm`, and checks
# from sacct that the GPU rules asked for GPUs and every job completed (tests/slurm/check_jobs.py).
#
# Needs root and apt-get (it installs Debian's slurm-wlm, munge, slurmdbd, mariadb-server and starts daemons);
# without them it says so and exits 2: it never pretends to pass. Everything it starts is stopped by pid on
# exit, also on failure, and the Snakemake runs sit under a hard kill limit (SLURM_TEST_LIMIT_S, default 1500 s).
#
# usage: tests/slurm/run.sh [PYTHON]     (PYTHON: the project's venv python; default .venv/bin/python)
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PY="${1:-$REPO/.venv/bin/python}"
PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"   # absolute, symlink kept: the venv's python
LIMIT_S="${SLURM_TEST_LIMIT_S:-1500}"

die() { echo "test-slurm: $*" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || die "needs root (it installs packages and starts slurmctld/slurmd/slurmdbd/munged/mysqld); not run"
command -v apt-get >/dev/null || die "needs apt-get (Debian/Ubuntu) to install slurm-wlm, munge, slurmdbd, mariadb-server; not run"
[ -x "$PY" ] || die "no python at $PY (run make venv first)"

# --- install (skipped when already there) ---------------------------------------------------------------
PKGS="slurm-wlm munge slurmdbd mariadb-server"
if ! dpkg -s $PKGS >/dev/null 2>&1; then
    echo "test-slurm: installing $PKGS"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $PKGS) >/tmp/test-slurm-apt.log 2>&1 \
        || { tail -20 /tmp/test-slurm-apt.log; die "apt-get install failed (log above)"; }
fi

# --- scratch state, configs ------------------------------------------------------------------------------
STATE="$(mktemp -d /tmp/mmu-slurm.XXXXXX)"
mkdir -p "$STATE"/{etc,ctld,d,run,log,work,mysql}
chmod 755 "$STATE" && chown mysql:mysql "$STATE/mysql"   # mysqld runs as mysql: its pid and log live there
DBPASS="mmu-$RANDOM$RANDOM"
RUN_ID="$(basename "$STATE" | tr -dc a-zA-Z0-9)"
DBNAME="mmu_acct_$RUN_ID" DBUSER="mmu_$RUN_ID"   # this run's own accounting database and user, dropped at exit
for f in slurm.conf gres.conf slurmdbd.conf; do
    sed -e "s#@STATE@#$STATE#g" -e "s#@DBPASS@#$DBPASS#g" -e "s#@DBNAME@#$DBNAME#g" -e "s#@DBUSER@#$DBUSER#g" "$HERE/$f.in" > "$STATE/etc/$f"
done
chmod 600 "$STATE/etc/slurmdbd.conf"
export SLURM_CONF="$STATE/etc/slurm.conf"   # sbatch/sacct/squeue and the daemons read this cluster's config

# Every process this run starts (daemons, slurmstepd, jobs, Snakemake) inherits this marker: cleanup finds
# and stops exactly those pids, never another SLURM or database on the machine.
export MMU_SLURM_TEST_RUN="$STATE"
our_pids() {
    local d p
    for d in /proc/[0-9]*; do
        p=${d#/proc/}
        { [ "$p" = "$$" ] || [ "$p" = "$BASHPID" ]; } && continue
        { tr '\0' '\n' < "$d/environ"; } 2>/dev/null | grep -qx "MMU_SLURM_TEST_RUN=$STATE" && echo "$p"
    done
}
SNAKE_PID=""
stop() {  # stop PIDFILE...: TERM the pids the daemons wrote (read first: a daemon deletes its file), wait, KILL
    local pids="" pf
    for pf in "$@"; do [ -s "$pf" ] && pids="$pids $(cat "$pf")"; done
    [ -z "$pids" ] && return 0
    kill -TERM $pids 2>/dev/null
    for _ in $(seq 10); do
        kill -0 $pids 2>/dev/null || return 0   # true while any of them is alive
        sleep 1
    done
    kill -KILL $pids 2>/dev/null
}
cleanup() {
    rc=$?
    [ -n "$SNAKE_PID" ] && kill -KILL -- "-$SNAKE_PID" 2>/dev/null
    squeue -h -o %i 2>/dev/null | xargs -r scancel 2>/dev/null   # this cluster's jobs (SLURM_CONF is ours)
    stop "$STATE/run/slurmd.pid" "$STATE/run/slurmctld.pid" "$STATE/run/slurmdbd.pid"
    mysql -uroot -e "DROP DATABASE IF EXISTS $DBNAME; DROP USER IF EXISTS '$DBUSER'@'localhost';" 2>/dev/null
    stop "$STATE/mysql/mysqld.pid" "$STATE/run/munged.pid"
    left="$(our_pids)"   # job steps, local jobs: anything else this run started
    if [ -n "$left" ]; then
        kill -TERM $left 2>/dev/null; sleep 2
        left="$(our_pids)"; [ -n "$left" ] && kill -KILL $left 2>/dev/null
    fi
    echo "test-slurm: stopped the cluster (state kept in $STATE); exit $rc"
    exit $rc
}
trap cleanup EXIT INT TERM

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local limit=$1 what=$2; shift 2
    for _ in $(seq "$limit"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
    echo "test-slurm: $what did not come up in ${limit}s" >&2
    tail -20 "$STATE"/log/*.log "$STATE"/mysql/*.log >&2
    exit 1
}

# --- daemons ----------------------------------------------------------------------------------------------
mkdir -p /run/munge && chown munge:munge /run/munge
munged --force --pid-file="$STATE/run/munged.pid" --log-file="$STATE/log/munged.log" 2>/dev/null \
    || munged --force --log-file="$STATE/log/munged.log"
[ -s "$STATE/run/munged.pid" ] || pgrep -n -x munged > "$STATE/run/munged.pid"
wait_for 10 munge munge -n

mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
mysqld --user=mysql --pid-file="$STATE/mysql/mysqld.pid" --log-error="$STATE/mysql/mysqld.log" \
    --innodb-buffer-pool-size=64M >/dev/null 2>&1 &
wait_for 60 mariadb mysqladmin ping
mysql -uroot -e "CREATE DATABASE $DBNAME; DROP USER IF EXISTS '$DBUSER'@'localhost';
    CREATE USER '$DBUSER'@'localhost' IDENTIFIED BY '$DBPASS'; GRANT ALL ON $DBNAME.* TO '$DBUSER'@'localhost';"

slurmdbd
wait_for 30 slurmdbd sacctmgr -n list cluster
sacctmgr -i add cluster local >/dev/null
sacctmgr -i add account mmu cluster=local description=mmunlearn organization=test >/dev/null
sacctmgr -i add user root account=mmu defaultaccount=mmu qos=normal >/dev/null

slurmctld
wait_for 30 slurmctld scontrol ping
env -u SLURM_CONF slurmd -N localhost --conf-server 127.0.0.1 -d "$(command -v slurmstepd)"
wait_for 30 "the node" bash -c "sinfo -h -N -o %T | grep -qv -e unknown -e down -e not_responding"
scontrol update nodename=localhost state=resume 2>/dev/null || true
sinfo -N -o "%N %T %C %m %G" && sacctmgr -n -P list assoc format=cluster,account,user,qos

# --- the study, through the project's slurm profile -------------------------------------------------------
WORK="$STATE/work/project"
mkdir -p "$WORK"
(cd "$REPO" && git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} cp --parents -P {} "$WORK/")
cp "$HERE/config.yaml" "$WORK/slurm-test.yaml"
cd "$WORK"
DEADLINE=$(( $(date +%s) + LIMIT_S ))
RUN_START="$(date +%Y-%m-%dT%H:%M:%S)"   # sacct reports this run's jobs only
submit() {  # submit EXPECT GPU_REQUEST LOGNAME SNAKEMAKE_ARGS... : the users' command, under the hard kill limit;
            # EXPECT is ok (exit 0 required) or fail (a non-zero exit required: a job that keeps failing)
    local expect=$1 form=$2 log="$STATE/log/$3"; shift 3
    echo "cluster: {gpu_request: $form}" > gpu-request.yaml
    local start=$(date +%s)
    echo "test-slurm: snakemake --profile slurm $* (GPU request: $form; killed in $(( DEADLINE - start ))s)"
    # its own session, so that the watchdog below kills Snakemake and every local job it started together
    setsid "$PY" -m snakemake --profile slurm \
        --configfile config/test.yaml slurm-test.yaml gpu-request.yaml \
        --slurm-init-seconds-before-status-checks 2 --seconds-between-status-checks 2 "$@" > "$log" 2>&1 &
    SNAKE_PID=$!
    while kill -0 "$SNAKE_PID" 2>/dev/null; do
        if [ "$(date +%s)" -ge "$DEADLINE" ]; then
            tail -40 "$log"
            echo "test-slurm: killed at the hard limit (${LIMIT_S}s): Snakemake hung" >&2
            exit 1   # cleanup kills the session and cancels the cluster's jobs
        fi
        sleep 2
    done
    wait "$SNAKE_PID"; local rc=$?; SNAKE_PID=""
    echo "test-slurm: exited $rc after $(( $(date +%s) - start ))s"
    grep -E -A12 "^Job stats" "$log" | head -16
    if { [ "$expect" = ok ] && [ "$rc" -ne 0 ]; } || { [ "$expect" = fail ] && [ "$rc" -eq 0 ]; }; then
        tail -60 "$log"
        echo "test-slurm: expected $expect, Snakemake exited $rc" >&2
        exit 1
    fi
}
running_job() {  # running_job RULE: the id of this cluster's running job of RULE (from its --comment), if any
    squeue -h -t RUNNING -o "%i %k" | awk -v rule="rule_$1" 'index($2, rule) == 1 {print $1; exit}'
}
cancel_after_checkpoint() {  # scancel the running vanilla fine-tune once its first checkpoint is on disk
    for _ in $(seq 1200); do
        local job
        job="$(running_job finetune_vanilla)"
        if [ -n "$job" ] && compgen -G "checkpoints/tiny-llava/seed42/vanilla/*/checkpoint.pt" >/dev/null; then
            scancel "$job" && echo "$job" >> "$STATE/cancelled.txt" && echo "test-slurm: scancel $job (finetune_vanilla, after a checkpoint)"
            return
        fi
        sleep 0.5
    done
}
preempt_every_attempt() {  # preempt each attempt of the GA unlearning job: a high-priority job takes the node's CPUs
    local seen=""
    for _ in $(seq 2400); do
        local job
        job="$(running_job unlearn)"
        if [ -n "$job" ] && [ "$job" != "$seen" ]; then
            seen=$job
            sbatch -Q -p urgent -A mmu -c 2 --mem=100 -J preemptor -o /dev/null --wrap "sleep 2" >/dev/null \
                && echo "test-slurm: preempting $job (unlearn)"
        fi
        sleep 0.5
    done
}

# 1. the reduced study, GPUs requested as --gres=gpu:N. Its oracle fine-tune outlives its 1-minute limit once
#    (TIMEOUT) and completes on a retry that asks for more (slurm-test.yaml).
submit ok gres snakemake.log results/summary.csv
cp results/summary.csv "$STATE/summary.uninterrupted.csv"
# 2. one evaluation again with the other GPU request form (--gpus=N)
submit ok gpu snakemake-gpus.log results/eval/tiny-llava/seed42/vanilla/forget_10.json --forcerun evaluate_ratio
# 2b. the preflight, a GPU job: measures every rule of the reduced study (README "Preflight")
submit ok gres snakemake-preflight.log results/preflight.json
# 3. the vanilla fine-tune again, cancelled (scancel) after its first checkpoint: resubmitted, it resumes, and the
#    study downstream of it reproduces the uninterrupted summary
cancel_after_checkpoint & WATCHER=$!
submit ok gres snakemake-cancel.log results/summary.csv --forcerun finetune_vanilla
kill "$WATCHER" 2>/dev/null
cp logs/finetune_vanilla/tiny-llava/seed42.log "$STATE/finetune_vanilla.resumed.log"
# 4. one GA unlearning job preempted on every attempt: after the profile's retries the run stops, naming the state
echo "methods: {ga: {epochs: 20}}" >> slurm-test.yaml   # a few seconds of steps, so that each attempt is preempted
preempt_every_attempt & WATCHER=$!
submit fail gres snakemake-preempt.log results/models/tiny-llava/seed42/ga_multimodal_10 --forcerun unlearn
kill "$WATCHER" 2>/dev/null

sacct -X -n -P -a --starttime="$RUN_START" \
    --format=JobID,JobName%60,Comment%200,State,Timelimit,AllocTRES%120,Account,QOS,Partition,SubmitLine%1000 \
    > "$STATE/sacct.txt"
"$PY" "$HERE/check_jobs.py" "$STATE/sacct.txt" "$WORK" "$STATE"
