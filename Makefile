# The two entry points of the README. Both need root: BPF programs and cgroups.
#   make run   installs what is missing, builds, starts the daemon in the foreground (built-in defaults)
#   make test  installs what is missing, builds, runs every test (kernel tests included) and a
#              seconds-long smoke of the benchmark runner
SWIFT ?= swift

.PHONY: deps build run test bench clean

deps:
	@sh packaging/install-deps.sh

build: deps
	$(SWIFT) build -c release

run: build
	.build/release/agentwatch daemon

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	python3 bench/run.py --smoke --agentwatch .build/debug/agentwatch

# The full side-by-side benchmark (about 15 minutes): results in bench/results/.
bench: deps
	python3 bench/run.py

clean:
	rm -rf .build
