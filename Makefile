# The two entry points of the README. Both need root: BPF programs and cgroups.
#   make run   installs what is missing, builds, starts the daemon in the foreground (built-in defaults)
#   make test  installs what is missing, builds, runs every test (kernel tests included) and a
#              seconds-long smoke of the benchmark runner
SWIFT ?= swift
SHELL := /bin/bash

.PHONY: deps build run test matrix matrix-bench bench clean package package-test

deps:
	@sh packaging/install-deps.sh

build: deps
	$(SWIFT) build -c release

run: build
	.build/release/agentwatch daemon

test: deps
	@# The targets' arrows run one way (docs/architecture.md), no source imports a target its
	@# own does not declare, and each target builds alone.
	python3 .ci/arrows.py --build-each
	$(SWIFT) build --build-tests --explicit-target-dependency-import-check error
	@# The failures are repeated at the end, where a CI log's tail shows them.
	set -o pipefail; $(SWIFT) test --skip-build 2>&1 | tee .build/test.log || { \
		echo "== failed tests (full log: .build/test.log) =="; \
		grep -aE "recorded an issue|✘ Test [^r]*failed" .build/test.log | cut -c1-600 | tail -n 30; exit 1; }
	.build/debug/agentwatch rules check rules
	.build/debug/agentwatch rules test rules
	python3 bench/run.py --smoke --agentwatch .build/debug/agentwatch

# The kernel suite in a VM of one of Debian's kernels under emulation (.ci/matrix.sh):
#   make matrix KERNEL=6.12 [FILTER=CaptureTests] [TIER=auto|lsm|fentry|kprobe|tracepoint]
# and a short benchmark run there, labelled as measured under emulation:
#   make matrix-bench KERNEL=6.12 [TIER=...]   (.build-matrix/out/bench-KERNEL-TIER/latest.md)
KERNEL ?= 6.12
FILTER ?= KernelTests
TIER ?= auto
matrix: deps
	$(SWIFT) build --build-tests
	.ci/matrix.sh $(KERNEL) '$(FILTER)' $(TIER)

matrix-bench: deps
	$(SWIFT) build -c release --scratch-path .build-bench
	.ci/matrix.sh $(KERNEL) bench $(TIER)

# The full side-by-side benchmark (about 20 minutes): results in bench/results/.
bench: deps
	python3 bench/run.py

# The Debian package, built with the Swift runtime linked in: .build-deb/agentwatch_<version>-1_<arch>.deb
package: deps
	packaging/build-deb.sh

# Builds the package, runs lintian, installs it here (dpkg -i), checks the installed service,
# config and man page, then removes and purges it (needs root; leaves the machine as it was).
package-test: deps
	packaging/test-deb.sh

clean:
	rm -rf .build .build-deb
