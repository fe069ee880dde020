# The two entry points of the README. Both need root: BPF programs and cgroups.
#   make run   installs what is missing, builds, starts the daemon in the foreground (built-in defaults)
#   make test  installs what is missing, builds, runs every test (kernel tests included)
SWIFT ?= swift

.PHONY: deps build run test clean

deps:
	@sh packaging/install-deps.sh

build: deps
	$(SWIFT) build -c release

run: build
	.build/release/agentwatch daemon

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

clean:
	rm -rf .build
