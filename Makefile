# The two commands a new user needs: `make demo` and `make test`. Both do all the set-up.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo test test-stress lint release data demo-deps system-deps

demo: $(STAMP) data
	$(PY) -m dlcourse demo

# Four workers on two cores: many tests wait (kernels and sandboxes starting, pip, a stopped
# call's sleep), so four finish sooner than two (26 min against 32 measured on one machine).
test: $(STAMP) system-deps data
	$(PY) -m ruff check .
	$(PY) -m pytest -n 4 -m "not stress" --durations=15

# Marks on a machine made busy on purpose (CW1 beside four CPU hogs on its core): minutes of a
# whole CPU, so not in `make test`; run it before a grading season or after changing the limits.
test-stress: $(STAMP) system-deps data
	$(PY) -m pytest -m stress -rA

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check dlcourse tests grader_tests gpu_check.py

release: $(STAMP)
	$(PY) -m dlcourse release

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -c constraints.txt -e '.[dev]'  # its progress shown: minutes on a fresh machine
	@touch $@

# Debian packages. What grading and the demo need: the Fashion-MNIST files and bubblewrap (the
# grader's sandbox). What only the staff tests need: a one-node Slurm (slurmctld, slurmd, munge),
# PostgreSQL and Chromium. Optional: without root or apt the data comes from torchvision's
# download, grading refuses to run unsandboxed unless told, and the Slurm, PostgreSQL and browser
# tests are skipped with the reason. `make demo` installs the first set, `make test` both.
DEMO_PACKAGES  := dataset-fashion-mnist bubblewrap
STAFF_PACKAGES := slurmctld slurmd slurm-client munge postgresql chromium

# $(call apt_install,PACKAGES): install what is missing, as root with apt-get; else say why not.
define apt_install
	@if dpkg -s $(1) >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(1) \
	    || echo "note: apt-get failed; trying the other sources"; \
	else echo "note: not root with apt-get; skipping Debian packages ($(1))"; fi
endef

demo-deps:
	$(call apt_install,$(DEMO_PACKAGES))

system-deps:
	$(call apt_install,$(DEMO_PACKAGES) $(STAFF_PACKAGES))

data: $(STAMP) demo-deps
	@$(PY) -m dlcourse data --download
