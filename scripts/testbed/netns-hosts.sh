#!/usr/bin/env bash
# A testbed of N "hosts" on this machine: each is a network namespace with its own address on a private
# bridge, its own hostname (UTS namespace), an /etc/netns/<ns>/hosts naming every host, and its own OpenSSH
# sshd on port 22 with key auth. Nothing routes off the bridge (no default route in the namespaces, no NAT,
# the bridge is not enslaved to a real interface), so test traffic never leaves the machine. All keys and
# configs live in a state folder; ~/.ssh and /etc/ssh are never read or written.
#
#   netns-hosts.sh up N [--prefix P] [--subnet A.B.C] [--plain-login] [--json]
#                                                   create (replacing any testbed with prefix P)
#   netns-hosts.sh down [--prefix P]                remove everything; safe to repeat
#   netns-hosts.sh describe [--prefix P]            print the JSON description
#
# --plain-login: SSH sessions on the hosts skip root's ~/.bashrc (an empty file is mounted over it in each
# host's own mount namespace; the machine's file is untouched). Every host shares this machine's /root, so
# an rc file that takes a lock there (pyenv's `pyenv rehash` does, retrying every 100 ms) makes concurrent
# logins on different hosts wait for each other, which separate machines would not.
#
# The description (JSON, also at $STATE/testbed.json) names the hosts, their addresses, the client key, the
# known_hosts file and an ssh_config usable with `ssh -F` or pdsh (PDSH_SSH_ARGS_APPEND="-F <file>").
# The hostname matters: PyTorch's gloo resolves the local hostname to find its own address, and with a
# shared hostname every host would resolve to loopback and cross-host jobs would hang.
# Runs as root (namespaces and bridges need CAP_NET_ADMIN).
set -euo pipefail

usage() { sed -n '8,11p' "$0" | sed 's/^#  *//' >&2; exit 2; }
die() { echo "netns-hosts: $*" >&2; exit 1; }

cmd=${1:-}; [ -n "$cmd" ] || usage; shift
count=0
if [ "$cmd" = up ]; then count=${1:-}; shift || true; fi
prefix=dt
subnet=10.231.0
json=0
plain_login=0
while [ $# -gt 0 ]; do
  case "$1" in
    --plain-login) plain_login=1; shift ;;
    --prefix) prefix=${2:?--prefix needs a value}; shift 2 ;;
    --subnet) subnet=${2:?--subnet needs a value}; shift 2 ;;
    --json) json=1; shift ;;
    *) usage ;;
  esac
done
# Interface names are limited to 15 bytes: "<prefix>v<index>" and "<prefix>br" must fit.
[[ "$prefix" =~ ^[a-z][a-z0-9]{0,7}$ ]] || die "--prefix must be 1-8 characters [a-z0-9], starting with a letter"
[[ "$subnet" =~ ^10\.([0-9]{1,3})\.([0-9]{1,3})$ ]] || die "--subnet must look like 10.B.C (a private /24 under 10/8)"

state=/tmp/dtrain-testbed-$prefix
bridge=${prefix}br
gateway=$subnet.1

[ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces need CAP_NET_ADMIN)"

namespaces() { ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${prefix}-h[0-9]+$" || true; }

down() {
  local ns pid pids
  for ns in $(namespaces); do
    # Every process of a host lives in its namespace (sshd, sessions, agents, workers): end exactly those.
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [ -z "$pids" ] || kill -TERM $pids 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      pids=$(ip netns pids "$ns" 2>/dev/null || true)
      [ -n "$pids" ] || break
      sleep 0.1
    done
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "/etc/netns/$ns"
  done
  # veth peers die with their namespace; remove any left by an interrupted `up`.
  for pid in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E "^${prefix}v[0-9]+$" || true); do
    ip link del "$pid" 2>/dev/null || true
  done
  ip link del "$bridge" 2>/dev/null || true
  rmdir /etc/netns 2>/dev/null || true
  rm -rf "$state"
}

describe() {
  [ -f "$state/testbed.json" ] || die "no testbed with prefix $prefix (run: $0 up N --prefix $prefix)"
  cat "$state/testbed.json"
}

up() {
  [[ "$count" =~ ^[0-9]+$ ]] && [ "$count" -ge 1 ] && [ "$count" -le 200 ] || die "up needs a host count 1..200"
  command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || die "sshd not found (apt-get install openssh-server)"
  down
  if ip -4 -o addr show | grep -q " $subnet\."; then die "subnet $subnet.0/24 is already in use on this machine; pick --subnet"; fi
  trap 'echo "netns-hosts: up failed, removing the partial testbed" >&2; down' ERR

  mkdir -p "$state" && chmod 700 "$state"
  ssh-keygen -q -t ed25519 -N '' -C "dtrain-testbed-$prefix-client" -f "$state/id_ed25519"
  cp "$state/id_ed25519.pub" "$state/authorized_keys"
  : >"$state/known_hosts"
  : >"$state/ssh_config"

  ip link add "$bridge" type bridge
  ip addr add "$gateway/24" dev "$bridge"
  ip link set "$bridge" up

  local i ns addr hostsfile="$state/etc_hosts" root_rc
  root_rc=$(getent passwd root | cut -d: -f6)/.bashrc
  {
    echo "127.0.0.1 localhost"
    for i in $(seq 1 "$count"); do echo "$subnet.$((10 + i)) ${prefix}-h$i"; done
    echo "$gateway ${prefix}-controller"
  } >"$hostsfile"

  local hosts_json=""
  for i in $(seq 1 "$count"); do
    ns=${prefix}-h$i
    addr=$subnet.$((10 + i))
    local dir=$state/hosts/$ns
    mkdir -p "$dir"
    ip netns add "$ns"
    ip link add "${prefix}v$i" type veth peer name eth0 netns "$ns"
    ip link set "${prefix}v$i" master "$bridge" up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set eth0 up
    mkdir -p "/etc/netns/$ns"
    cp "$hostsfile" "/etc/netns/$ns/hosts"
    echo "$ns" >"/etc/netns/$ns/hostname"

    ssh-keygen -q -t ed25519 -N '' -C "$ns" -f "$dir/ssh_host_ed25519_key"
    cat >"$dir/sshd_config" <<EOF
Port 22
ListenAddress $addr
HostKey $dir/ssh_host_ed25519_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $state/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
X11Forwarding no
PrintMotd no
PrintLastLog no
MaxStartups 10:30:100
MaxSessions 64
LogLevel VERBOSE
EOF
    # sshd needs its privilege-separation folder /run/sshd; give each host a private /run (tmpfs in its own
    # mount namespace) instead of creating it on the machine. setsid detaches it from this shell.
    plain=
    if [ "$plain_login" = 1 ] && [ -f "$root_rc" ]; then : >"$dir/empty_rc"; plain="mount --bind '$dir/empty_rc' '$root_rc' && "; fi
    setsid -f ip netns exec "$ns" unshare --uts --mount --propagation private sh -c \
      "mount -t tmpfs -o mode=755 tmpfs /run && mkdir -m 755 /run/sshd && hostname '$ns' && $plain""exec /usr/sbin/sshd -D -E '$dir/sshd.log' -f '$dir/sshd_config'" \
      </dev/null >/dev/null 2>&1
    echo "$ns,$addr $(cut -d' ' -f1,2 "$dir/ssh_host_ed25519_key.pub")" >>"$state/known_hosts"
    cat >>"$state/ssh_config" <<EOF
Host $ns
  HostName $addr
  User root
  Port 22
  IdentityFile $state/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $state/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 5

EOF
    [ -z "$hosts_json" ] || hosts_json+=","
    hosts_json+=$(printf '\n    {"name": "%s", "namespace": "%s", "hostname": "%s", "address": "%s", "port": 22, "user": "root", "veth": "%s", "host_key": "%s", "sshd_config": "%s", "sshd_pid_file": "%s", "sshd_log": "%s"}' \
      "$ns" "$ns" "$ns" "$addr" "${prefix}v$i" "$(cut -d' ' -f1,2 "$dir/ssh_host_ed25519_key.pub")" "$dir/sshd_config" "$dir/sshd.pid" "$dir/sshd.log")
  done

  # Wait until every sshd accepts connections (it writes its pid file once listening).
  for i in $(seq 1 "$count"); do
    ns=${prefix}-h$i
    local ok=0
    for _ in $(seq 1 100); do
      if [ -s "$state/hosts/$ns/sshd.pid" ]; then ok=1; break; fi
      sleep 0.05
    done
    [ "$ok" = 1 ] || die "sshd on $ns did not start: $(tail -3 "$state/hosts/$ns/sshd.log" 2>/dev/null)"
  done

  cat >"$state/testbed.json" <<EOF
{
  "prefix": "$prefix",
  "subnet": "$subnet.0/24",
  "bridge": "$bridge",
  "controller_address": "$gateway",
  "state_dir": "$state",
  "user": "root",
  "client_key": "$state/id_ed25519",
  "authorized_keys": "$state/authorized_keys",
  "known_hosts": "$state/known_hosts",
  "ssh_config": "$state/ssh_config",
  "hosts": [$hosts_json
  ]
}
EOF
  trap - ERR
  if [ "$json" = 1 ]; then cat "$state/testbed.json"; else echo "netns-hosts: $count hosts up (${prefix}-h1..${prefix}-h$count on $subnet.0/24); description: $state/testbed.json" >&2; fi
}

case "$cmd" in
  up) up ;;
  down) down ;;
  describe) describe ;;
  *) usage ;;
esac
