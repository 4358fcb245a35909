# One way to start the throwaway registry that e2e/, the demo and the benchmarks push to: the CNCF
# distribution registry (Debian's docker-registry) on a free loopback port, plain HTTP. Sourced.

# registry_start DIR: start one with its state in DIR (emptied first); sets REGISTRY_ADDR (HOST:PORT)
# and REGISTRY_PID, returns 1 if it does not answer. Call it in the shell that stops it (not in
# $(...)), so REGISTRY_PID is that shell's child; stop it with `registry_stop "$REGISTRY_PID"`.
registry_start() {
    local dir=$1 port i
    rm -rf "$dir" && mkdir -p "$dir/data"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >"$dir/config.yml" <<YML
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
http: {addr: "127.0.0.1:$port"}
storage: {filesystem: {rootdirectory: "$dir/data"}, delete: {enabled: true}}
YML
    # A plain command, so $! is the registry itself and registry_stop stops exactly it.
    docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
    REGISTRY_PID=$!
    REGISTRY_ADDR=127.0.0.1:$port
    for i in $(seq 100); do
        curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1 && return 0
        kill -0 "$REGISTRY_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "the registry on $REGISTRY_ADDR did not answer, see $dir/registry.log" >&2
    return 1
}

# registry_stop PID: stop a registry started by registry_start (quietly, also if it is gone).
registry_stop() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
