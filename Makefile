# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Every package herd, its tests and its build need, pinned with hashes (`make lock` writes it).
LOCK   := requirements.lock
# The benchmarks' extras, resolved within the versions of $(LOCK).
BENCH_LOCK := requirements-bench.lock
BENCH_STAMP := $(VENV)/.installed-bench
# pyftpdlib's TLS handler for bench/ftp.py, in a venv of its own (pyOpenSSL's cryptography
# bound excludes herd's): its own lock, resolved apart from herd's.
PEER_TLS      := .venv-pyftpdlib-tls
PEER_TLS_IN   := bench/pyftpdlib-tls.in
PEER_TLS_LOCK := requirements-bench-tls.lock
PEER_TLS_STAMP := $(PEER_TLS)/.installed
# `make lock` runs uv from a private venv of its own, at this version.
UV_VERSION := 0.13.9
TOOLS  := .venv-tools
UV     := $(TOOLS)/bin/uv
COMPILE = $(UV) pip compile --quiet --universal --python-version 3.11 --generate-hashes \
          --custom-compile-command 'make lock'
# A throwaway venv with the newest versions pyproject.toml allows.
LATEST := .venv-latest
PIP    := python -m pip --disable-pip-version-check --quiet

.PHONY: demo test lint typecheck pytest system-deps bench lock test-latest clean

demo: $(STAMP)
	$(BIN)/herd demo

test: $(STAMP) system-deps lint typecheck pytest

# The venv is rebuilt from scratch whenever the lock or pyproject.toml changes, so it
# holds exactly the locked set: nothing left over from an older lock.
$(STAMP): pyproject.toml $(LOCK) bin/herd
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/$(PIP) install --require-hashes --no-deps -r $(LOCK)
	$(BIN)/$(PIP) install --no-deps --no-build-isolation -e .
	$(BIN)/$(PIP) check
	touch $(STAMP)

# The system tests talk to real sshd, Dropbear (with a BusyBox userland), sudo, lftp and curl;
# as root we install what is missing (dropbear-bin: the binaries only, no service started).
system-deps:
	@missing=""; \
	command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || missing="$$missing openssh-server"; \
	[ -x /usr/sbin/dropbear ] && command -v dropbearkey >/dev/null 2>&1 || missing="$$missing dropbear-bin"; \
	command -v busybox >/dev/null 2>&1 || missing="$$missing busybox"; \
	command -v ssh-keygen >/dev/null 2>&1 || missing="$$missing openssh-client"; \
	command -v lftp >/dev/null 2>&1 || missing="$$missing lftp"; \
	command -v curl >/dev/null 2>&1 || missing="$$missing curl"; \
	command -v sudo >/dev/null 2>&1 || missing="$$missing sudo"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "not root: system tests needing$$missing will be skipped"; \
	  fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

bench: $(BENCH_STAMP) $(PEER_TLS_STAMP)

$(BENCH_STAMP): $(STAMP) $(BENCH_LOCK)
	$(BIN)/$(PIP) install --require-hashes --no-deps -r $(BENCH_LOCK)
	$(BIN)/$(PIP) check
	touch $(BENCH_STAMP)

$(PEER_TLS_STAMP): $(PEER_TLS_LOCK)
	rm -rf $(PEER_TLS)
	$(PYTHON) -m venv $(PEER_TLS)
	$(PEER_TLS)/bin/$(PIP) install --require-hashes --no-deps -r $(PEER_TLS_LOCK)
	$(PEER_TLS)/bin/$(PIP) check
	touch $(PEER_TLS_STAMP)

# Regenerate the locks: from pyproject.toml the runtime, the dev extra and the build
# backend (so `pip install --no-build-isolation` builds herd with a locked setuptools),
# and the bench extra; from $(PEER_TLS_IN) pyftpdlib's TLS handler, apart from herd's.
lock: $(UV)
	$(PYTHON) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' \
	  | $(COMPILE) pyproject.toml - --extra dev -o $(LOCK)
	$(COMPILE) pyproject.toml --extra bench --constraint $(LOCK) -o $(BENCH_LOCK)
	$(COMPILE) $(PEER_TLS_IN) -o $(PEER_TLS_LOCK)

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/$(PIP) install uv==$(UV_VERSION)

# Not part of `make test`: the suite against the newest releases pyproject.toml allows,
# so an upstream break is seen here before a user meets it.
test-latest: system-deps
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/$(PIP) install --upgrade pip
	$(LATEST)/bin/$(PIP) install --upgrade --upgrade-strategy eager -e '.[dev]'
	$(LATEST)/bin/$(PIP) list --format freeze
	$(LATEST)/bin/ruff check src tests bench
	$(LATEST)/bin/mypy
	$(LATEST)/bin/pytest -q

clean:
	rm -rf $(VENV) $(TOOLS) $(LATEST) $(PEER_TLS) build src/*.egg-info
