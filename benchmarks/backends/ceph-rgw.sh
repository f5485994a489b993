#!/usr/bin/env bash
# A single-node Ceph RGW (the production "Ceph S3") under one directory, for benchmarks and
# the Ceph compatibility tests: one monitor, one OSD (bluestore on a sparse file), radosgw
# with the beast frontend on 127.0.0.1. No ceph-mgr, no systemd, nothing outside DIR: every
# command runs with `-c DIR/ceph.conf`, and admin sockets, pid files and logs live in DIR.
#
#   ceph-rgw.sh start DIR [--port N] [--block-size BYTES] [--min-part-size BYTES]
#                         [--compression ALG] [--timeout S]
#       Bootstraps a cluster in DIR (or restarts the one DIR holds, with its data), makes sure
#       the S3 user exists, waits until the S3 endpoint answers, and prints one JSON line:
#       {"endpoint", "access_key", "secret_key", "region", "dir", "pids": {"mon", "osd", "rgw"}}
#       --port          S3 port; default: the port of the previous start if it is free, else
#                       a free one.
#       --block-size    size of the sparse bluestore file, e.g. 40G (default) or 21474836480;
#                       used only when the cluster is created.
#       --min-part-size rgw_multipart_min_part_size (S3's 5 MiB otherwise); remembered for
#                       later restarts of DIR until given again.
#       --compression   BlueStore compression forced on every pool (the RGW data pool
#                       included): snappy, zstd, lz4 or zlib; "none" (default) writes none.
#                       Applies to what is written from this start on.
#       --timeout       bound on the whole start, seconds (default 120, env CEPH_RGW_TIMEOUT).
#   ceph-rgw.sh stop DIR     SIGTERM the daemons started from DIR, wait (bounded), SIGKILL.
#   ceph-rgw.sh status DIR   print the JSON line again if the cluster runs (exit 3 if not).
#   ceph-rgw.sh gc DIR       radosgw-admin gc process --include-all (between benchmark rounds).
#   ceph-rgw.sh install      install the Debian packages when missing (root; apt-get).
#
# Layout of DIR: ceph.conf (rewritten at each start), keyring (every key), cluster.json
# (fsid, monitor port; written once the cluster exists), s3.json (the S3 user), settings.json
# (port, min part size), mon/ osd/ (osd/ceph-0/block is the sparse file) rgw/ run/ (pid
# files, admin sockets) log/ (daemon logs, *.out = their stdio, ceph-rgw.log = this script),
# .lock (one start/stop at a time), .bootstrapping (present until the first start succeeded).
# Exit codes: 0 ok, 1 failure (the message and the tail of the relevant log on stderr),
# 2 usage, 3 "status": not running.
set -euo pipefail

readonly PROG=${0##*/}
readonly PACKAGES=(ceph-mon ceph-osd radosgw)
readonly BINARIES=(ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool)
readonly MON_ID=a
readonly OSD_ID=0
readonly RGW_NAME=client.rgw.gw
readonly DAEMONS=(mon osd rgw)
readonly REGION=default
readonly S3_UID=ghga
readonly DEFAULT_ACCESS_KEY=GHGATASKSCEPHACCESS0
readonly DEFAULT_SECRET_KEY=ghga-tasks-ceph-rgw-secret-key-0000000000

usage() {
    sed -n '7,22p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# --- messages ---------------------------------------------------------------------------
# stdout carries only the JSON line; progress goes to DIR/log/ceph-rgw.log, and to stderr
# when stderr is a terminal.
LOGFILE=/dev/null
say() {
    local line
    line="$(date '+%H:%M:%S.%3N') $*"
    printf '%s\n' "$line" >>"$LOGFILE"
    if [[ -t 2 ]]; then printf '%s: %s\n' "$PROG" "$*" >&2; fi
}

STARTED_PIDS=()   # daemons this invocation started: a failed start stops the cluster again
fail() {          # fail MESSAGE [LOGFILE...]
    local msg=$1 f
    shift
    printf '%s: error: %s\n' "$PROG" "$msg" >&2
    printf '%s error: %s\n' "$(date '+%H:%M:%S.%3N')" "$msg" >>"$LOGFILE" 2>/dev/null || true
    for f in "$@"; do
        if [[ -s $f ]]; then
            printf -- '--- last lines of %s ---\n' "$f" >&2
            tail -n 25 "$f" >&2
        fi
    done
    if ((${#STARTED_PIDS[@]})); then
        stop_daemons  # a failed start leaves nothing running
    fi
    exit 1
}

# --- installation -----------------------------------------------------------------------
missing_binaries() {
    local b
    for b in "${BINARIES[@]}"; do
        command -v "$b" >/dev/null 2>&1 || printf '%s ' "$b"
    done
}

ensure_installed() {
    local missing
    missing=$(missing_binaries)
    [[ -z $missing ]] && return 0
    if ((EUID != 0)); then
        fail "missing ${missing}; as root run: apt-get update && apt-get install -y --no-install-recommends ${PACKAGES[*]}"
    fi
    printf '%s: installing %s (missing: %s)\n' "$PROG" "${PACKAGES[*]}" "$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2 || fail "apt-get update failed"
    apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >&2 \
        || fail "apt-get install ${PACKAGES[*]} failed"
    missing=$(missing_binaries)
    [[ -z $missing ]] || fail "still missing after apt-get install: $missing"
}

# python3 for JSON and ports; Debian's own first (a pyenv shim costs ~0.2 s a call).
if [[ -x /usr/bin/python3 ]]; then PY=/usr/bin/python3
elif command -v python3 >/dev/null 2>&1; then PY=python3
else echo "$PROG: error: python3 is required" >&2; exit 1
fi

# --- small helpers ----------------------------------------------------------------------
now_us() { local t=${EPOCHREALTIME//[.,]/}; echo "$((10#$t))"; }  # microseconds
deadline_in() { echo "$(($(now_us) + $1 * 1000000))"; }
before() { (($(now_us) < $1)); }
remaining() { local r=$((($1 - $(now_us) + 999999) / 1000000)); echo "$((r < 1 ? 1 : r))"; }
elapsed() { local us=$(($(now_us) - $1)); printf '%d.%02d' "$((us / 1000000))" "$((us % 1000000 / 10000))"; }

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port_is_free() {
    "$PY" - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the daemons do: TIME_WAIT is free
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}
port_listens() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
http_answers() {  # any HTTP status counts: the S3 endpoint is up
    "$PY" - "$1" <<'EOF'
import sys, urllib.request, urllib.error
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
try:
    opener.open(sys.argv[1], timeout=2).read()
except urllib.error.HTTPError:
    pass
except Exception:
    sys.exit(1)
EOF
}

json_get() {  # json_get FILE KEY -> value ("" when absent)
    "$PY" - "$1" "$2" <<'EOF'
import json, sys
try:
    with open(sys.argv[1]) as f:
        v = json.load(f).get(sys.argv[2])
except FileNotFoundError:
    v = None
print("" if v is None else v)
EOF
}
json_write() {  # json_write FILE k1 v1 k2 v2 ...; integers stay integers; atomic
    "$PY" - "$@" <<'EOF'
import json, os, sys
path, kv = sys.argv[1], sys.argv[2:]
d = {}
for k, v in zip(kv[::2], kv[1::2]):
    d[k] = int(v) if v.lstrip("-").isdigit() else (None if v == "" else v)
with open(path + ".tmp", "w") as f:
    json.dump(d, f)
    f.write("\n")
os.replace(path + ".tmp", path)
EOF
}

to_bytes() {  # 40G, 512M, 1T, or a plain number of bytes
    local v=$1
    [[ $v =~ ^[0-9]+[KMGTkmgt]?[iI]?[bB]?$ ]] || return 1
    v=${v%[bB]}
    v=${v%[iI]}
    numfmt --from=iec "${v^^}"
}

# --- daemons ----------------------------------------------------------------------------
pid_of() { [[ -s $RUN/$1.pid ]] && cat "$RUN/$1.pid" || true; }

is_ours() {  # a live process whose command line names our ceph.conf (not a recycled PID)
    local pid=$1
    [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
    [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]] || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "$CONF"
}

kill_pids() {  # kill_pids GRACE_SECONDS PID...: SIGTERM, bounded wait, SIGKILL
    local grace=$1 pid alive i
    shift
    for pid in "$@"; do is_ours "$pid" && kill -TERM "$pid" 2>/dev/null || true; done
    for ((i = 0; i < grace * 10; i++)); do
        alive=0
        for pid in "$@"; do is_ours "$pid" && alive=1; done
        ((alive)) || return 0
        sleep 0.1
    done
    for pid in "$@"; do
        if is_ours "$pid"; then
            say "pid $pid ignored SIGTERM for ${grace}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for ((i = 0; i < 50; i++)); do
        alive=0
        for pid in "$@"; do is_ours "$pid" && alive=1; done
        ((alive)) || return 0
        sleep 0.1
    done
}

launch() {  # launch NAME CMD...: a daemon in the foreground of its own session, stdio to a file
    local name=$1 pid
    shift
    # In a non-interactive shell a background job is no process-group leader, so setsid(1)
    # calls setsid() and execs without forking: $! is the daemon's PID.
    setsid "$@" </dev/null >>"$LOG/$name.out" 2>&1 9>&- &  # fd 9: the DIR lock, not theirs
    pid=$!
    echo "$pid" >"$RUN/$name.pid"
    STARTED_PIDS+=("$pid")
    say "started $name: pid $pid"
}

daemon_log() {
    case $1 in
        mon) echo "$LOG/ceph-mon.$MON_ID.log" ;;
        osd) echo "$LOG/ceph-osd.$OSD_ID.log" ;;
        rgw) echo "$LOG/ceph-$RGW_NAME.log" ;;
    esac
}

check_alive() {  # fail with the daemon's logs if it died
    local name=$1 pid
    pid=$(pid_of "$name")
    is_ours "$pid" || fail "ceph $name (pid ${pid:-?}) exited during start-up" \
        "$LOG/$name.out" "$(daemon_log "$name")"
}

ceph_cli() {  # the ceph CLI against our cluster, bounded
    timeout "$(remaining "$DEADLINE")" ceph -c "$CONF" --connect-timeout 10 "$@"
}

wait_for() {  # wait_for WHAT DAEMON... -- CMD...: until CMD succeeds or the deadline passes
    local what=$1 d
    shift
    local daemons=()
    while [[ $1 != -- ]]; do daemons+=("$1"); shift; done
    shift
    while ! "$@"; do
        for d in "${daemons[@]}"; do check_alive "$d"; done
        if ! before "$DEADLINE"; then
            d=${daemons[${#daemons[@]} - 1]}  # the one waited for; the others are alive
            fail "timed out after ${TIMEOUT}s waiting for $what (logs in $LOG)" \
                "$LOG/$d.out" "$(daemon_log "$d")"
        fi
        sleep 0.1
    done
    say "$what: ok"
}

# --- state ------------------------------------------------------------------------------
set_dir() {
    [[ -n ${1:-} ]] || usage
    [[ $1 != *[[:space:]]* ]] || { echo "$PROG: error: DIR must not contain whitespace" >&2; exit 2; }
    if [[ ${2:-} == create ]]; then
        mkdir -p "$1"
    elif [[ ! -d $1 ]]; then
        echo "$PROG: $1: no such directory" >&2
        exit 3
    fi
    DIR=$(cd "$1" && pwd -P)
    CONF=$DIR/ceph.conf
    KEYRING=$DIR/keyring
    RUN=$DIR/run
    LOG=$DIR/log
}

lock_dir() {  # one start/stop at a time per DIR (two test workers, say); bounded wait
    exec 9>>"$DIR/.lock"
    flock -w "$1" 9 || fail "another $PROG start/stop on $DIR did not finish within $1 s"
}

print_json() {
    local port=$1
    "$PY" - "$DIR" "$port" "$(pid_of mon)" "$(pid_of osd)" "$(pid_of rgw)" "$REGION" <<'EOF'
import json, sys
d, port, mon, osd, rgw, region = sys.argv[1:7]
with open(d + "/s3.json") as f:
    user = json.load(f)
print(json.dumps({
    "endpoint": f"http://127.0.0.1:{port}",
    "access_key": user["access_key"],
    "secret_key": user["secret_key"],
    "region": region,  # the zonegroup; RGW accepts any SigV4 region
    "dir": d,
    "pids": {"mon": int(mon), "osd": int(osd), "rgw": int(rgw)},
}))
EOF
}

running_count() {
    local n=0 d
    for d in "${DAEMONS[@]}"; do is_ours "$(pid_of "$d")" && n=$((n + 1)); done
    echo "$n"
}

write_conf() {  # write_conf FSID MON_PORT BLOCK_BYTES [COMPRESSION]
    cat >"$CONF" <<EOF
# Single-node Ceph for ghga_tasks benchmarks/tests; written by $PROG. Use with -c $CONF.
[global]
fsid = $1
mon_host = [v2:127.0.0.1:$2]
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_msgr1 = false
ms_bind_msgr2 = true
ms_bind_ipv6 = false
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
keyring = $KEYRING
run_dir = $RUN
crash_dir = $DIR/crash
log_file = $LOG/\$cluster-\$name.log
mon_cluster_log_file = $LOG/\$cluster.log
# one OSD: pools of size 1, no host-level failure domain, few PGs, no autoscaler (no mgr)
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
mon_warn_on_insecure_global_id_reclaim_allowed = false
# the monitor stops itself below mon_data_avail_crit % free disk: benchmarks fill the disk
mon_data_avail_warn = 5
mon_data_avail_crit = 1
# fast pool creation: radosgw's first start goes from ~10 s to ~1 s
paxos_propose_interval = 0.1
paxos_min_wait = 0.01
# A killed radosgw leaves its watches on the control objects; the next radosgw's first
# notify waits for them to expire (30 s) or for client_notify_timeout (10 s). Live watchers
# ping every objecter tick (0.5 s below), so 5 s is plenty.
osd_client_watch_timeout = 5

[mon]
mon_data = $DIR/mon/\$cluster-\$id
mon_allow_pool_delete = true

[osd]
osd_data = $DIR/osd/\$cluster-\$id
osd_objectstore = bluestore
bluestore_block_create = true
bluestore_block_size = $3
bluestore_fsck_on_mkfs = false
# each close of the block file waits out one aio poll (250 ms by default)
bdev_aio_poll_ms = 50
$(compression_conf "${4:-none}")

[client]
# a client whose first ops wait for the OSD to come up re-reads the osdmap only on this
# tick (5 s by default): radosgw starts together with the OSD
objecter_tick_interval = 0.5

[$RGW_NAME]
rgw_data = $DIR/rgw/\$cluster-\$id
EOF
}

compression_conf() {  # compression_conf ALG: the [osd] lines that force BlueStore compression
    [[ $1 == none ]] && return 0
    printf '# compress every blob, whatever the client hints (--compression)\n'
    printf 'bluestore_compression_mode = force\nbluestore_compression_algorithm = %s\n' "$1"
    # RGW gives no sequential-write hint, so BlueStore would compress 8 KiB blobs, each
    # into a whole 4 KiB allocation unit (half the bytes); 512 KiB blobs keep the ratio
    printf 'bluestore_compression_min_blob_size = 524288\n'
    printf 'bluestore_compression_max_blob_size = 524288\n'
    printf 'bluestore_max_blob_size = 524288\n'
}

# --- commands ---------------------------------------------------------------------------
bootstrap() {  # create a new cluster in DIR; leaves mon and osd running
    local block_bytes=$1 fsid osd_uuid mon_port mkfs_pid f
    if [[ -e $DIR/.bootstrapping ]]; then
        say "removing the remains of an unfinished bootstrap"
        rm -rf "$DIR/mon" "$DIR/osd" "$DIR/rgw" "$CONF" "$KEYRING" "$DIR/monmap" \
            "$DIR/s3.json" "$RUN"/*.pid
    fi
    for f in "$CONF" "$DIR/mon" "$DIR/osd"; do
        [[ ! -e $f ]] || fail "$DIR holds $f but no cluster.json: not a cluster made by $PROG; use an empty DIR"
    done
    : >"$DIR/.bootstrapping"
    fsid=$(cat /proc/sys/kernel/random/uuid)
    osd_uuid=$(cat /proc/sys/kernel/random/uuid)
    mon_port=$(free_port)
    say "bootstrap: fsid $fsid, mon on 127.0.0.1:$mon_port, block $block_bytes bytes"
    write_conf "$fsid" "$mon_port" "$block_bytes" "$COMPRESSION"
    mkdir -p "$DIR/mon/ceph-$MON_ID" "$DIR/osd/ceph-$OSD_ID" "$DIR/rgw/ceph-gw" "$DIR/crash"

    # Every key, with its caps, in one keyring that ceph-mon --mkfs imports: no `ceph auth`.
    {
        ceph-authtool --create-keyring "$KEYRING" --gen-key -n mon. --cap mon 'allow *'
        ceph-authtool "$KEYRING" --gen-key -n client.admin --cap mon 'allow *' \
            --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *'
        ceph-authtool "$KEYRING" --gen-key -n "osd.$OSD_ID" --cap mon 'allow profile osd' \
            --cap osd 'allow *' --cap mgr 'allow profile osd'
        ceph-authtool "$KEYRING" --gen-key -n "$RGW_NAME" --cap mon 'allow rw' \
            --cap osd 'allow rwx' --cap mgr 'allow rw'
        monmaptool --create --clobber --enable-all-features --fsid "$fsid" \
            --addv "$MON_ID" "[v2:127.0.0.1:$mon_port]" "$DIR/monmap"
        ceph-mon -c "$CONF" --mkfs -i "$MON_ID" --monmap "$DIR/monmap" --keyring "$KEYRING"
    } >>"$LOG/bootstrap.out" 2>&1 || fail "creating the monitor failed" "$LOG/bootstrap.out" \
        "$(daemon_log mon)"

    # The OSD's bluestore mkfs (sparse block file) needs no monitor: run it meanwhile.
    ceph-osd -c "$CONF" -i "$OSD_ID" --mkfs --osd-uuid "$osd_uuid" --no-mon-config \
        </dev/null >>"$LOG/osd-mkfs.out" 2>&1 9>&- &
    mkfs_pid=$!

    start_mon
    ceph_cli osd new "$osd_uuid" "$OSD_ID" >>"$LOG/ceph-cli.out" 2>&1 \
        || fail "ceph osd new failed" "$LOG/ceph-cli.out" "$(daemon_log mon)"
    wait "$mkfs_pid" || fail "ceph-osd --mkfs failed" "$LOG/osd-mkfs.out" "$(daemon_log osd)"
    say "osd mkfs: ok"
    start_osd
    json_write "$DIR/cluster.json" fsid "$fsid" mon_port "$mon_port" osd_uuid "$osd_uuid" \
        block_size "$block_bytes"
}

start_mon() {
    launch mon ceph-mon -c "$CONF" -f -i "$MON_ID"
    local mon_port
    mon_port=$(json_get "$DIR/cluster.json" mon_port)
    [[ -n $mon_port ]] || mon_port=$(sed -n 's/^mon_host = \[v2:127.0.0.1:\([0-9]*\)\]$/\1/p' "$CONF")
    wait_for "monitor on port $mon_port" mon -- port_listens "$mon_port"
}

start_osd() { launch osd ceph-osd -c "$CONF" -f -i "$OSD_ID"; }

start_rgw() {  # start_rgw PORT MIN_PART_SIZE
    local args=(radosgw -c "$CONF" -f -n "$RGW_NAME" --rgw_frontends "beast endpoint=127.0.0.1:$1")
    [[ -z $2 ]] || args+=(--rgw_multipart_min_part_size "$2")
    launch rgw "${args[@]}"
}

ensure_user() {
    [[ -s $DIR/s3.json ]] && return 0
    local access=${CEPH_RGW_ACCESS_KEY:-$DEFAULT_ACCESS_KEY}
    local secret=${CEPH_RGW_SECRET_KEY:-$DEFAULT_SECRET_KEY}
    local out=$LOG/radosgw-admin.out
    # A fresh cluster has no user; after a start that failed half-way it may.
    if [[ -e $DIR/.bootstrapping ]] || ! timeout "$(remaining "$DEADLINE")" \
        radosgw-admin -c "$CONF" user info --uid "$S3_UID" >>"$out" 2>&1; then
        timeout "$(remaining "$DEADLINE")" radosgw-admin -c "$CONF" user create --uid "$S3_UID" \
            --display-name "ghga_tasks benchmarks" --access-key "$access" --secret-key "$secret" \
            >>"$out" 2>&1 || fail "radosgw-admin user create failed" "$out"
    fi
    json_write "$DIR/s3.json" uid "$S3_UID" access_key "$access" secret_key "$secret"
    say "S3 user $S3_UID: ok"
}

cmd_start() {
    local port="" block=40G min_part="" block_bytes
    TIMEOUT=${CEPH_RGW_TIMEOUT:-120}
    COMPRESSION=none
    [[ -n ${1:-} && ${1:-} != -* ]] || usage
    local dir_arg=$1
    shift
    while (($#)); do
        case $1 in
            --port) port=${2:?--port needs a value}; shift 2 ;;
            --port=*) port=${1#*=}; shift ;;
            --block-size) block=${2:?--block-size needs a value}; shift 2 ;;
            --block-size=*) block=${1#*=}; shift ;;
            --min-part-size) min_part=${2:?--min-part-size needs a value}; shift 2 ;;
            --min-part-size=*) min_part=${1#*=}; shift ;;
            --compression) COMPRESSION=${2:?--compression needs a value}; shift 2 ;;
            --compression=*) COMPRESSION=${1#*=}; shift ;;
            --timeout) TIMEOUT=${2:?--timeout needs a value}; shift 2 ;;
            --timeout=*) TIMEOUT=${1#*=}; shift ;;
            *) echo "$PROG: error: unknown option $1" >&2; usage ;;
        esac
    done
    [[ -z $port || $port =~ ^[0-9]+$ ]] || { echo "$PROG: error: --port: not a number: $port" >&2; exit 2; }
    [[ $TIMEOUT =~ ^[0-9]+$ ]] || { echo "$PROG: error: --timeout: not a number of seconds" >&2; exit 2; }
    case $COMPRESSION in
        none | snappy | zstd | lz4 | zlib) ;;
        *) echo "$PROG: error: --compression: one of none, snappy, zstd, lz4, zlib" >&2; exit 2 ;;
    esac
    block_bytes=$(to_bytes "$block") || { echo "$PROG: error: --block-size: not a size: $block" >&2; exit 2; }
    if [[ -n $min_part ]]; then
        min_part=$(to_bytes "$min_part") || { echo "$PROG: error: --min-part-size: not a size" >&2; exit 2; }
    fi

    set_dir "$dir_arg" create
    mkdir -p "$RUN" "$LOG"
    LOGFILE=$LOG/ceph-rgw.log
    ensure_installed
    lock_dir "$TIMEOUT"
    DEADLINE=$(deadline_in "$TIMEOUT")
    local t0
    t0=$(now_us)
    say "start $DIR"

    local running osd_died=0
    if [[ -n $(stray_pids) ]]; then
        say "daemons of an earlier cluster in DIR still run: stopping them"
        stop_daemons
    fi
    running=$(running_count)
    # an OSD that ended without `stop` (killed, crashed, machine reset) is still "up" in the
    # osdmap at its old address
    if [[ -s $RUN/osd.pid ]] && ! is_ours "$(pid_of osd)"; then osd_died=1; fi
    if [[ -s $DIR/cluster.json ]] && ((running == ${#DAEMONS[@]})); then
        local cur
        cur=$(json_get "$DIR/settings.json" port)
        if [[ -n $port && $port != "$cur" ]]; then
            fail "already running on port $cur (stop it first to change the port)"
        fi
        http_answers "http://127.0.0.1:$cur/" || fail "running, but http://127.0.0.1:$cur/ does not answer" "$(daemon_log rgw)"
        say "already running"
        print_json "$cur"
        return 0
    fi
    if ((running > 0)); then
        say "some daemons of DIR run, some not: restarting all"
        stop_daemons
    fi

    # The S3 port: --port, else the previous one if free, else a free one.
    if [[ -z $port ]]; then
        port=$(json_get "$DIR/settings.json" port)
        if [[ -z $port ]] || ! port_is_free "$port"; then port=$(free_port); fi
    elif ! port_is_free "$port"; then
        fail "port $port on 127.0.0.1 is in use"
    fi
    [[ -n $min_part ]] || min_part=$(json_get "$DIR/settings.json" min_part_size)
    json_write "$DIR/settings.json" port "$port" min_part_size "$min_part"

    if [[ -s $DIR/cluster.json ]]; then
        local mon_port
        mon_port=$(json_get "$DIR/cluster.json" mon_port)
        port_is_free "$mon_port" || fail "the monitor's port $mon_port (fixed in its monmap) is in use"
        say "restart of an existing cluster"
        # settings of this script's version; the cluster's identity from cluster.json
        write_conf "$(json_get "$DIR/cluster.json" fsid)" "$mon_port" \
            "$(json_get "$DIR/cluster.json" block_size)" "$COMPRESSION"
        start_mon
        if ((osd_died)); then
            # A radosgw that starts with that osdmap sends its first op to the dead address
            # and asks for a newer map only when the op turns laggy (objecter_timeout, 10 s).
            ceph_cli osd down "$OSD_ID" >>"$LOG/ceph-cli.out" 2>&1 \
                || fail "ceph osd down $OSD_ID failed" "$LOG/ceph-cli.out" "$(daemon_log mon)"
            say "marked the OSD of the previous run down"
        fi
        start_osd
    else
        bootstrap "$block_bytes"
    fi
    start_rgw "$port" "$min_part"
    wait_for "S3 endpoint http://127.0.0.1:$port/" mon osd rgw -- http_answers "http://127.0.0.1:$port/"
    ensure_user
    rm -f "$DIR/.bootstrapping"
    say "up in $(elapsed "$t0") s"
    print_json "$port"
}

stray_pids() {  # "BINARY PID" lines: daemons with our -c DIR/ceph.conf but no pid file
    local p pid exe recorded
    recorded=" $(pid_of mon) $(pid_of osd) $(pid_of rgw) "
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        [[ $recorded == *" $pid "* ]] && continue
        exe=""
        { IFS= read -r -d '' exe <"$p/cmdline"; } 2>/dev/null || true  # argv[0]
        case ${exe##*/} in
            ceph-mon | ceph-osd | radosgw) is_ours "$pid" && echo "${exe##*/} $pid" ;;
        esac
    done
    return 0
}

stop_daemons() {
    # One at a time, top down: radosgw hangs in its shutdown when the OSD is gone, and the
    # OSD tells the monitor that it goes down. Strays too: daemons of this DIR whose pid
    # files were lost (a DIR emptied while its cluster ran).
    local strays name pid rgw=() osd=() mon=()
    strays=$(stray_pids)
    while read -r name pid; do
        case $name in
            radosgw) rgw+=("$pid") ;;
            ceph-osd) osd+=("$pid") ;;
            ceph-mon) mon+=("$pid") ;;
        esac
    done <<<"$strays"
    kill_pids 20 "$(pid_of rgw)" "${rgw[@]}"
    kill_pids 20 "$(pid_of osd)" "${osd[@]}"
    kill_pids 10 "$(pid_of mon)" "${mon[@]}"
    rm -f "$RUN"/{mon,osd,rgw}.pid
}

cmd_stop() {
    [[ -n ${1:-} ]] || usage
    [[ -d $1 ]] || return 0  # nothing to stop
    set_dir "$1"
    LOGFILE=$LOG/ceph-rgw.log
    [[ -d $LOG ]] || LOGFILE=/dev/null
    lock_dir 120
    stop_daemons
    say "stopped"
}

cmd_status() {
    set_dir "${1:-}"
    local port
    port=$(json_get "$DIR/settings.json" port)
    if [[ -s $DIR/cluster.json && -s $DIR/s3.json ]] && (($(running_count) == ${#DAEMONS[@]})) \
        && http_answers "http://127.0.0.1:$port/"; then
        print_json "$port"
    else
        echo "$PROG: $DIR: not running" >&2
        exit 3
    fi
}

cmd_gc() {
    set_dir "${1:-}"
    LOGFILE=$LOG/ceph-rgw.log
    if (($(running_count) != ${#DAEMONS[@]})); then
        echo "$PROG: $DIR: not running" >&2
        exit 3
    fi
    say "gc process --include-all"
    timeout "${CEPH_RGW_GC_TIMEOUT:-3600}" radosgw-admin -c "$CONF" gc process --include-all \
        >>"$LOG/radosgw-admin.out" 2>&1 || fail "radosgw-admin gc process failed" "$LOG/radosgw-admin.out"
    say "gc done"
}

case ${1:-} in
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    status) shift; cmd_status "$@" ;;
    gc) shift; cmd_gc "$@" ;;
    install) ensure_installed ;;
    -h | --help | help) usage ;;
    *) usage ;;
esac
