# cairn tasks. `just test` is what CI runs (see .ci/run).

set shell := ["bash", "-euo", "pipefail", "-c"]

# every check CI runs, on a fresh machine too: Debian packages (as root), the stand-in, the unprivileged test user, fmt, clippy -D warnings, every test, one reference app end to end, then the differential suite against BuildKit (as root)
test: deps fixtures test-user
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo test --workspace
    just e2e-ci
    if [ "$(id -u)" = 0 ]; then just compat; else echo "test: just compat skipped: BuildKit's dockerd needs root" >&2; fi

# the Debian packages the tests, the demo and the test bases use, and QEMU for arm64 RUN steps (binfmt_misc, F flag): installed/registered when missing (as root), else the command to run
deps:
    tests/support/system-deps.sh
    tests/support/binfmt.sh aarch64

# the unprivileged user of the rootless tests (as root: created with its subordinate ids; otherwise: checks yours)
test-user:
    tests/support/test-user.sh

# re-bless golden files on purpose (say why in the commit)
bless:
    CAIRN_BLESS=1 cargo test --workspace

# the demo: installs what is missing, builds the base stand-in, starts a registry, builds nextjs-3stage, pushes, edits a line, rebuilds, cairn diff (CAIRN_DEMO_BASE=docker.io/library/node:22-alpine for the real base)
demo:
    e2e/demo.sh

# end-to-end on the reference apps (all, or APP / APP:TARGET): build with npm inside RUN, push, skopeo + umoci read-back, podman run + /api/health, rebuild elsewhere and explain digest differences with cairn diff
e2e *APPS:
    e2e/run.sh {{APPS}}

# the end-to-end check CI runs: one app (the quickest), everything it starts stopped; state and logs in target/e2e-ci
e2e-ci APP="monorepo-backend":
    E2E_OUT=target/e2e-ci e2e/run.sh {{APP}}

# differential tests against BuildKit (issue #21): the testdata/compat corpus built by cairn and by dockerd's BuildKit, configs and filesystems compared against compat/expected.tsv (root; installs docker.io; base COMPAT_BASE_OCI; COMPAT_TIER=all adds the reference apps; state in target/compat)
compat *CASES:
    compat/run.sh {{CASES}}

# the test bases as OCI layouts under target/fixtures/, each built by cairn from testdata/base/NAME and checked against its pinned digests (built once; rebuilt when the pins change; downloads cached in $CAIRN_FIXTURE_CACHE): node-alpine (the node:22-alpine stand-in) and busybox-multi (linux/amd64 + linux/arm64)
fixtures:
    #!/usr/bin/env bash
    set -euo pipefail
    built=
    for name in node-alpine busybox-multi; do
        out=target/fixtures/$name
        if [ -f "$out/oci/index.json" ] && cmp -s "$out/digests" "testdata/base/$name/digests"; then echo "fixtures: $out/oci is built" >&2; continue; fi
        [ -n "$built" ] || { cargo build -q --bin cairn; built=1; }
        CAIRN=${CARGO_TARGET_DIR:-target}/debug/cairn "testdata/base/$name/build.sh" "$out"
    done

# a local registry on 127.0.0.1:${CAIRN_REGISTRY_PORT:-5000} (state in target/registry) holding library/node:22-alpine[-multi], pushed by cairn
registry-up: fixtures
    #!/usr/bin/env bash
    set -euo pipefail
    dir=$PWD/target/registry
    if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
        echo "registry-up: already running on 127.0.0.1:$(cat "$dir/port") (pid $(cat "$dir/pid"))" >&2; exit 0
    fi
    port=${CAIRN_REGISTRY_PORT:-5000}
    mkdir -p "$dir/data"
    printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:%s\n' "$dir/data" "$port" > "$dir/config.yml"
    docker-registry serve "$dir/config.yml" > "$dir/registry.log" 2>&1 &
    echo $! > "$dir/pid"; echo "$port" > "$dir/port"
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "registry-up: registry did not start:" >&2; cat "$dir/registry.log" >&2; exit 1; }
    cargo build -q --bin cairn
    cairn=${CARGO_TARGET_DIR:-target}/debug/cairn
    for tag in 22-alpine 22-alpine-multi; do
        "$cairn" push "oci:target/fixtures/node-alpine/oci:$tag" "127.0.0.1:$port/library/node:$tag"
    done
    echo "registry-up: 127.0.0.1:$port/library/node:{22-alpine,22-alpine-multi} (pid $(cat "$dir/pid"))" >&2

# stop the registry started by registry-up (its state stays in target/registry/data)
registry-down:
    #!/usr/bin/env bash
    set -euo pipefail
    pidf=target/registry/pid
    [ -f "$pidf" ] || { echo "registry-down: not running" >&2; exit 0; }
    pid=$(cat "$pidf")
    kill "$pid" 2>/dev/null && while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    rm -f "$pidf"
    echo "registry-down: stopped pid $pid" >&2

# every benchmark: layer writer, registry, diff, bench-build, the e2e table and the CI cache scenario (reports in target/bench/)
bench: bench-layers bench-registry bench-diff bench-build bench-e2e bench-cache

# cairn vs BuildKit (dockerd 20.10, started and stopped here) vs buildah, interleaved, on a generated 5,000-file COPY-only build: cold, no-op, one file changed (issues #5, #22); N rounds (default 5), report in target/bench/build.md (root)
bench-build:
    bench/build.sh

# the end-to-end table on testdata/apps/nextjs-3stage, turborepo-web and bench/small (BENCH_APPS picks): cairn, BuildKit, buildah interleaved round by round, same registry, base and CA secret; cold, no-op, edit, push, repro; builder overhead, cairn's own peak RSS and RUN steps against BuildKit (issues #8, #22); N rounds (default 3), report in target/bench/e2e.md (root)
bench-e2e:
    bench/e2e.sh

# the CI scenario on nextjs-3stage (issue #16): fresh runner (empty local storage) with a warm registry cache vs a warm local cache, no change and one line edited, build + push; cairn's registry cache vs buildah --cache-from/--cache-to vs BuildKit's inline cache, same registry; wall time and bytes moved; N rounds (default 1), report in target/bench/cache/cache.md (root)
bench-cache:
    bench/cache.sh

# two-platform build (linux/amd64 + linux/arm64 under QEMU): cairn vs buildah --platform --manifest, interleaved, RUN steps timed per platform (issue #19); APP=small (generated 5,000-file context on busybox-multi, N=3) or nextjs (testdata/apps/nextjs-3stage on the node-multi base, built here when missing; N=1, 10-20 min a round); report in target/bench/multi.md or multi-nextjs.md (root)
bench-multi-platform APP="small":
    #!/usr/bin/env bash
    set -euo pipefail
    if [ "{{APP}}" = nextjs ] && [ ! -f target/fixtures/node-multi/oci/index.json ]; then
        testdata/base/node-multi/build.sh target/fixtures/node-multi
    fi
    BENCH_MULTI_APP={{APP}} bench/multi-platform.sh

# push and pull of the fixture (54 MB) and a generated 300 MB image, cairn vs skopeo, into target/bench/registry.md
bench-registry: fixtures
    bench/registry.sh

# `cairn diff` of two ~500 MB images sharing a base, differing in one small layer, from a loopback registry; goal ≤ 2 s (issue #7) into target/bench/diff.md
bench-diff:
    bench/diff.sh

# layer writer throughput against tar | gzip | sha256sum (issue #2)
bench-layers:
    bench/layers.sh

# fuzz one target for SECONDS (targets: parse, expand); needs `cargo install cargo-fuzz` and nightly
fuzz TARGET="parse" SECONDS="600": fuzz-seed
    cd fuzz && cargo +nightly fuzz run -O {{TARGET}} -- -max_total_time={{SECONDS}} -max_len=4096

# build every fuzz target and run each for ~20 s
fuzz-smoke: fuzz-seed
    cd fuzz && cargo +nightly fuzz build -O
    cd fuzz && for t in $(cargo +nightly fuzz list); do cargo +nightly fuzz run -O "$t" -- -max_total_time=20 -max_len=4096; done

# seed the fuzz corpora: the Dockerfiles of testdata/dockerfile, and deep nesting
fuzz-seed:
    mkdir -p fuzz/corpus/parse fuzz/corpus/expand
    find testdata/dockerfile -name Dockerfile | while read -r f; do cp "$f" "fuzz/corpus/parse/seed-$(printf %s "$f" | sha256sum | cut -c1-16)"; done
    # deep `${…}` nesting (past the lexer's bound) for both targets
    python3 -c 'import sys; n=200; sys.stdout.write("\x00\0" + "${a:-" * n + "x" + "}" * n)' > fuzz/corpus/expand/seed-deep-nesting
    python3 -c 'import sys; n=200; sys.stdout.write("\x00\0" + "${a:-\"" * n + "x" + "\"}" * n)' > fuzz/corpus/expand/seed-deep-quoted
    python3 -c 'import sys; n=200; sys.stdout.write("FROM scratch\nENV B=" + "${a:-" * n + "x" + "}" * n + "\n")' > fuzz/corpus/parse/seed-deep-nesting
