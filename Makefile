# ec2-fleet: every entry point an operator or CI uses.
#   make test   every test (tests/fleet beside lint, the other tests and molecule), setting up what it needs
#   make lab    the local AWS lab (see README)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV        ?= .venv
PYTHON      ?= python3
IMAGE       ?= localhost/ec2-fleet-host:bookworm
SCENARIOS   ?= $(sort $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml))))

export CONTAINERS_CONF := $(CURDIR)/tools/containers.conf
export ANSIBLE_CONFIG  := $(CURDIR)/ansible.cfg
export EC2_FLEET_TEST_IMAGE := $(IMAGE)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_FORCE_COLOR := 0
export PY_COLORS := 0
export NO_COLOR := 1

# podman on CNI with the dnsname plugin (containers on a lab network resolve each other's names;
# molecule's default network keeps the host's resolver) and iptables for CNI's NAT; nftables for
# the lab's "no route from the ops box" rule and the SSH-loss fault; PgBouncer for the app's tests in
# transaction pooling; headless Chromium and its driver (and certutil for its trust store) for the
# frontend's browser tests. npm comes with nodejs.
HOST_PACKAGES := podman runc containernetworking-plugins golang-github-containernetworking-plugin-dnsname \
                 iptables nftables debootstrap uidmap slirp4netns redis-server postgresql haproxy openssl nodejs \
                 pgbouncer chromium chromium-driver libnss3-tools

.PHONY: help host-deps venv image lint test test-unit test-molecule clean lab lab-down lab-status bench

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort

host-deps: .cache/host-deps.stamp ## Install the system packages the tests need (apt, as root)
.cache/host-deps.stamp:
	@mkdir -p .cache
	@missing=""; for p in $(HOST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@touch $@

venv: $(VENV)/.stamp $(VENV)/.devkit.stamp ## Create .venv with the pinned toolchain and the development kit; check requirements.yml offline
$(VENV)/.stamp: requirements.txt requirements.yml app/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt -e 'app[test]'
	$(VENV)/bin/ansible-galaxy collection install -r requirements.yml --offline
	@touch $@

# The development kit (devkit/: the lab, the load generator, the play runners, the benchmarks), editable:
# its own stamp, so an existing venv gets it too without being rebuilt.
$(VENV)/.devkit.stamp: $(VENV)/.stamp devkit/pyproject.toml
	$(VENV)/bin/pip install -q -e devkit
	@touch $@

image: host-deps ## Build the offline Debian 12 systemd test image (reused while its tag exists)
	tools/build-test-image.sh $(IMAGE)

lint: venv ## ansible-lint (production profile), yamllint, ruff, syntax-check of every playbook
	yamllint -s .
	ruff check .
	ansible-lint --profile production
	@for p in playbooks/*.yml bench/*.yml; do ansible-playbook --syntax-check -i localhost, "$$p" >/dev/null || exit 1; echo "syntax ok: $$p"; done

test-unit: venv host-deps image ## pytest: app, modules, variables, bad inputs
	pytest -q tests app/tests

MOLECULE_JOBS ?= 2
test-molecule: venv image ## Every molecule scenario, full sequence, MOLECULE_JOBS at a time
	tools/run-molecule.sh -j $(MOLECULE_JOBS) $(SCENARIOS)

test: venv host-deps image ## Every test, from a fresh clone: tests/fleet beside lint, the other tests and molecule
	tools/run-tests.sh -j $(MOLECULE_JOBS) $(SCENARIOS)

LAB := $(VENV)/bin/python lab/labctl.py
lab: host-deps venv image ## The local AWS lab: moto, 3 hosts, Redis, PostgreSQL, HAProxy; provision + site; print the fleet
	$(LAB) up
	ansible-playbook -i inventories/lab playbooks/provision.yml
	ansible-playbook -i inventories/lab playbooks/site.yml
	$(LAB) status

lab-down: ## Stop the lab and remove everything it started
	$(LAB) down

lab-status: ## The lab's fleet table and load balancer URL
	$(LAB) status

bench: host-deps venv image ## Benchmarks (bench/README.md): a lab of their own; figures in bench/results/latest.{json,md}
	$(VENV)/bin/python bench/run.py all

clean: ## Remove the venv and caches (not the test image)
	rm -rf $(VENV) .cache
