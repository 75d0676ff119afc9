# hashgate: `make demo` and `make test` work on a fresh Debian 12 machine as root.
SHELL := /bin/bash
.DEFAULT_GOAL := test

# System packages the build and the tests need: FFmpeg libraries and CLI, clang for bindgen,
# nginx with the RTMP module (the platform in tests), stunnel (TLS terminator), GStreamer
# (a second broadcaster), openssl, Redis and HAProxy (the fleet tests), python3 (a list server).
APT_PACKAGES := gcc g++ libc6-dev pkg-config clang libclang-dev \
	libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev \
	libavfilter-dev libavdevice-dev ffmpeg \
	nginx libnginx-mod-rtmp stunnel4 openssl ca-certificates \
	gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
	gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav \
	libchromaprint-tools espeak-ng fonts-dejavu-core \
	redis-server redis-tools haproxy python3

# OBS Studio as a broadcaster (tests/obs.rs): a large install, so not part of `make test`.
INTEROP_PACKAGES := obs-studio xvfb

.PHONY: deps build test demo bench lint interop redteam fuzz-smoke fuzz
deps:
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		if [ "$$(id -u)" != 0 ]; then echo "need root to apt-get install these" >&2; exit 1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	cargo build --release

test: deps
	cargo test --release

# The live demo: hashgate and a local platform on loopback; the samples replayed through them
# like broadcasts; a report of what was cut, when, and what reached the platform. Then the
# offline scan's table of when each sampling rate would cut, for tuning `[sampling] fps`.
demo: build
	@test -f samples/flagged.pdq || samples/make-samples.sh target/release/hashgate
	target/release/hashgate demo --samples samples
	@echo
	@echo "== tuning: when each sampling rate would cut samples/flagged.flv, and its CPU"
	@target/release/hashgate scan --config samples/demo.toml --fps 0.5,1,2,4 samples/flagged.flv

# Every fuzz target (fuzz/fuzz_targets/) for a short fixed time from its seeds, after every input
# that once crashed one: CI runs it. `make fuzz TARGET=session SECONDS=600` fuzzes one for longer.
FUZZ_SECONDS ?= 10
fuzz-smoke: deps
	fuzz/run.sh smoke $(FUZZ_SECONDS)

fuzz: deps
	fuzz/run.sh run $(TARGET) $(or $(SECONDS),600)

bench: build
	bench/relay.sh

# OBS Studio under Xvfb publishing the flagged sample through hashgate: every message held the
# full delay, the clip cut, the reconnect cut on probation.
interop: deps
	@missing=$$(for p in $(INTEROP_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	cargo test --release --test obs -- --ignored --nocapture

# Every evasion tried as a broadcaster who read the source: outcome, frames aired, time to decide.
redteam: build
	bench/redteam.sh

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
