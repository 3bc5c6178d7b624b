# The two commands a fresh machine needs: `make demo` and `make test`.
# Both build the virtual environment from nothing (pyproject.toml pins the versions).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint firmware-check bench clean venv esp32-vm esp32-vm-if-source

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m tgd_rig.demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check firmware server hil_tests tools bench

firmware-check: $(STAMP)
	$(BIN)/python tools/fwcheck.py

# The tests mostly wait (emulated handsets, servers, a browser), so three workers on two
# cores take the suite from ~22 to ~11 min; a file's tests stay on one worker (its
# fixtures, its rig). PYTEST_JOBS=0 runs them in this process, one after the other.
PYTEST_JOBS ?= 3
test: $(STAMP) lint firmware-check esp32-vm-if-source
	$(BIN)/pytest -n $(PYTEST_JOBS) --dist loadfile $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/tgd-rig bench
	$(BIN)/tgd-server bench

clean:
	rm -rf $(VENV) build *.egg-info var/test-*

# ---- The ESP32-faithful VM (docs/firmware.md "Memory") ------------------------------------
# MicroPython's unix port built 32-bit (4-byte words, as on an ESP32) with asyncio and the
# firmware frozen through firmware/manifest.py (the manifest an ESP32 image build takes), so
# bytecode runs from "flash" and the GC heap holds what a handset's heap holds:
#     build/esp32-vm/micropython -X heapsize=48k firmware/main.py
# MICROPYTHON_SRC: the MicroPython v1.28 source, an archive (.tar.gz) or a source tree.
# It is extracted or copied under build/esp32-vm/src and built there, never in place.
# Needs gcc's -m32 (Debian: gcc-multilib). Rebuilds only when the source, a firmware module
# or a manifest changes: a full build takes about a minute, a firmware change a few seconds.
MICROPYTHON_SRC ?= ../shared/micropython/micropython-1.28.0.tar.gz
VM_DIR     := build/esp32-vm
VM         := $(VM_DIR)/micropython
VM_SRC     := $(VM_DIR)/src
VM_JOBS    ?= 2
VM_OPTIONS := VARIANT=standard MICROPY_FORCE_32BIT=1 MICROPY_PY_BTREE=0 MICROPY_PY_SSL=0 \
              MICROPY_PY_FFI=0
# What a source tree needs for mpy-cross and the unix port (lib/: the submodule-free parts).
VM_SRC_PARTS := LICENSE py extmod shared mpy-cross tools ports/unix \
                $(addprefix lib/,littlefs oofatfs re1.5 uzlib libm libm_dbl crypto-algorithms \
                mbedtls_errors)
VM_FROZEN  := $(sort $(wildcard firmware/*.py firmware/host/*.py))
ifneq ($(wildcard $(MICROPYTHON_SRC)/py),)
VM_SOURCE_FILES := $(shell find $(addprefix $(MICROPYTHON_SRC)/,py extmod shared mpy-cross/main.c ports/unix) \
                     -path '*/build*' -prune -o -type f -print 2>/dev/null)
else
VM_SOURCE_FILES := $(wildcard $(MICROPYTHON_SRC))
endif

esp32-vm: $(VM)

# `make test` builds the VM where a MicroPython source is, and says so where there is none.
esp32-vm-if-source:
	@if [ -e "$(MICROPYTHON_SRC)" ]; then $(MAKE) --no-print-directory esp32-vm; else \
	  echo "make: no MicroPython source at MICROPYTHON_SRC=$(MICROPYTHON_SRC): the firmware tests run on the PyPI port (64-bit, code in the heap: no heap figure is the chip's)"; fi

# The list of frozen files: adding or removing a module rebuilds (its content is the stamp).
$(VM_DIR)/frozen-files: FORCE
	@mkdir -p $(VM_DIR)
	@echo '$(VM_FROZEN)' | cmp -s - $@ || echo '$(VM_FROZEN)' > $@

# Which source the VM is built from: another MICROPYTHON_SRC rebuilds it.
$(VM_DIR)/source: FORCE
	@mkdir -p $(VM_DIR)
	@echo '$(abspath $(MICROPYTHON_SRC))' | cmp -s - $@ || echo '$(abspath $(MICROPYTHON_SRC))' > $@

$(VM_SRC)/.unpacked: $(VM_SOURCE_FILES) $(VM_DIR)/source
	@test -e "$(MICROPYTHON_SRC)" || { echo "make esp32-vm: no MicroPython source at MICROPYTHON_SRC=$(MICROPYTHON_SRC) (an archive or a source tree of v1.28; see ../shared/micropython/README.md)"; exit 2; }
	@echo 'int main(void){return 0;}' | $(CC) -m32 -x c - -o /dev/null 2>/dev/null || { echo "make esp32-vm: $(CC) cannot build 32-bit programs (-m32): install gcc-multilib (apt-get install gcc-multilib)"; exit 2; }
	rm -rf $(VM_SRC) && mkdir -p $(VM_SRC)
	@if [ -d "$(MICROPYTHON_SRC)" ]; then \
	  echo "copying $(MICROPYTHON_SRC) into $(VM_SRC)"; \
	  cd "$(MICROPYTHON_SRC)" && tar --exclude='build*' --exclude=.git -cf - $(foreach p,$(VM_SRC_PARTS),$$(test -e $(p) && echo $(p))) \
	    | tar -C "$(CURDIR)/$(VM_SRC)" -xf -; \
	else \
	  echo "extracting $(MICROPYTHON_SRC) into $(VM_SRC)"; \
	  tar -xzf "$(MICROPYTHON_SRC)" -C $(VM_SRC) --strip-components=1; \
	fi
	mkdir -p $(VM_DIR)/no-micropython-lib && touch $(VM_DIR)/no-micropython-lib/README.md
	touch $@

$(VM): $(VM_SRC)/.unpacked $(VM_DIR)/frozen-files $(VM_FROZEN)
	GIT_CEILING_DIRECTORIES=$(CURDIR)/$(VM_DIR) $(MAKE) -j$(VM_JOBS) --no-print-directory -C $(VM_SRC)/mpy-cross
	GIT_CEILING_DIRECTORIES=$(CURDIR)/$(VM_DIR) $(MAKE) -j$(VM_JOBS) --no-print-directory -C $(VM_SRC)/ports/unix $(VM_OPTIONS) \
	  FROZEN_MANIFEST=$(CURDIR)/firmware/host/manifest.py \
	  MPY_LIB_DIR=$(CURDIR)/$(VM_DIR)/no-micropython-lib BUILD=$(CURDIR)/$(VM_DIR)/unix
	cp $(VM_SRC)/mpy-cross/build/mpy-cross $(VM_DIR)/mpy-cross
	cp $(VM_DIR)/unix/micropython $@.tmp && mv $@.tmp $@
	@echo "built $@: $$($@ -c 'import sys; print("MicroPython %d.%d.%d" % sys.implementation.version[:3], "%d-bit" % (32 if sys.maxsize < 2**32 else 64))')"

FORCE:
