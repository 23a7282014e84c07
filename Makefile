# ntlb — common jobs. Everything builds one profile (release).
CARGO ?= cargo
NTLB := target/release/ntlb
SHARED ?= ../shared
GOLDEN := $(SHARED)/golden
CASES := tokenize encode_text encode_image coop_middle coop_end coop_trajectory

.PHONY: all build test parity parity-torchscript bench bench-encode bench-train-step demo demo-study regress baseline mutants pretrain-synth

all: demo

# The main job on the embedded default (CPU, no downloads): generate the synthetic world if
# missing, run configs/demo.toml (zero-shot templates, CoOp with λ ∈ {0, 0.3, 1, 3, 10} × 3 seeds,
# five datasets) with the committed tiny CLIP, and write tables and figures to results/demo/report/.
demo: build
	$(NTLB) demo --config configs/demo.toml

# The with/without-λ study on the demo world (configs/demo-study.toml: 8 seeds, λ ∈ {0, 1, 3} ×
# class-name score max/mean/min, paired effects with 95 % intervals in the report); ~17 min on 2 cores.
demo-study: build
	$(NTLB) demo --config configs/demo-study.toml

# Rerun a short demo (zero-shot, CoOp seed 1 with λ = 0 and 1) and fail when a top-1/top-5, a
# class-name score, the CoOp − start gap or the λ > 0 − λ = 0 score gap moves past its measured
# tolerance from results/baselines/demo.csv. scripts/mutants.sh checks that it catches breakages.
regress: build
	$(NTLB) regress --config configs/demo.toml --baseline results/baselines/demo.csv

# Regenerate results/baselines/demo.csv from the final code: the demo's rows and the regression
# rerun's (its λ = 1 runs with the mean and min class-name scores, which the demo does not train).
baseline: demo
	$(NTLB) regress --config configs/demo.toml --baseline results/baselines/demo.csv --write-baseline-from results/demo

# Apply each deliberate breakage of the method to a scratch copy; `ntlb regress` must fail on each.
mutants:
	scripts/mutants.sh

# Retrain the tiny CLIP of the demo (about 22 minutes on 2 cores); the result is committed.
pretrain-synth: build
	$(NTLB) pretrain-synth --out models/synth-clip

build:
	$(CARGO) build --release

# The test suite (the same command CI runs).
test:
	$(CARGO) test --release --workspace

# Parity with the reference implementation on the shared golden cases, through both checkpoint
# layouts; recomputed cases are written to results/parity/.
parity: build
	@mkdir -p results/parity
	@set -e; for layout in openai.safetensors hf; do for c in $(CASES); do \
	  echo "== $$c via $$layout"; \
	  $(NTLB) parity --case $(GOLDEN)/$$c.json --model $(GOLDEN)/tiny-clip/$$layout \
	    --tokenizer $(GOLDEN)/tiny-clip/hf/tokenizer.json --out results/parity/$$c.$$layout.json; \
	done; done

# OpenAI's TorchScript archives of the golden tiny CLIP (needs PyTorch: TORCH_PY), then the test
# that holds them to the reference's golden features (28 MB each, so not committed).
parity-torchscript:
	$(TORCH_PY) scripts/make_torchscript_fixture.py --golden target/torchscript-golden
	$(CARGO) test --release -p ntlb-clip --test torchscript_golden -- --ignored

bench: bench-encode bench-train-step

# Images/s and texts/s; NTLB_PYTHON=path/to/python-with-torch adds the PyTorch CPU figure.
bench-encode: build
	$(NTLB) bench encode --presets ViT-B/32,RN50 --batches 1,32 --reps 3

# Seconds per prompt-learning step at ViT-B/32 size, pass 1 replicated (one text pass per image) and shared (one for the batch, the default)
# each in its own process; --reference also times the original algorithm re-implemented in
# PyTorch after it reproduces the golden coop_middle case (needs NTLB_PYTHON with torch).
bench-train-step: build
	$(NTLB) bench train-step --preset vit-b-32 --classes 10 --batch 32 --reps 1
	$(NTLB) bench train-step --preset vit-b-32 --classes 100 --batch 4 --chunk 128 --reps 1 $(if $(NTLB_PYTHON),--reference,)

# The paper's comparison on ImageNet and its variants (datasets/README.md gives the layouts):
#   make eval-imagenet DATA=/data CHECKPOINTS=/ckpt [MODELS=ViT-B/32] [CONFIG=configs/imagenet-full.toml] [DEVICE=cuda]
CONFIG ?= configs/imagenet.toml
DATA ?= data
CHECKPOINTS ?= checkpoints
DEVICE ?= cpu
MODELS ?=
RESULTS ?= results/$(basename $(notdir $(CONFIG)))

.PHONY: eval-imagenet
# DEVICE=cuda[:N] runs the LibTorch build (build-tch below); anything else the CPU build.
IS_CUDA = $(filter cuda%,$(DEVICE))
TORCH_LIB_CMD = $(TORCH_PY) -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))'
EVAL_RUN = $(if $(IS_CUDA),LD_LIBRARY_PATH=$$($(TORCH_LIB_CMD)):$$LD_LIBRARY_PATH $(TCH_TARGET)/release/ntlb,$(NTLB))
eval-imagenet: $(if $(IS_CUDA),build-tch,build)
	$(EVAL_RUN) sweep $(CONFIG) --data $(DATA) --checkpoints $(CHECKPOINTS) --device $(DEVICE) --results $(RESULTS) $(if $(MODELS),--models $(MODELS),)
	$(EVAL_RUN) report $(RESULTS)

# GPU build (LibTorch through burn `tch`; never part of CI). LibTorch comes from a Python with
# torch: by default a venv this Makefile makes in .venv-torch with PyPI torch==$(TORCH_VERSION)
# (4+ GB of wheels, CUDA libraries included), or your own: TORCH_PY=/path/to/bin/python.
TORCH_VERSION ?= 2.11.0
TORCH_VENV ?= .venv-torch
TORCH_PY ?= $(TORCH_VENV)/bin/python
TCH_TARGET ?= target-tch
.PHONY: torch-venv build-tch gpu-pack
$(TORCH_VENV)/bin/python:
	python3 -m venv $(TORCH_VENV)
	$(TORCH_VENV)/bin/pip install torch==$(TORCH_VERSION)
torch-venv: $(TORCH_PY)

build-tch: $(TORCH_PY)
	PATH=$(dir $(abspath $(TORCH_PY))):$$PATH LIBTORCH_USE_PYTORCH=1 LIBTORCH_BYPASS_VERSION_CHECK=1 \
	  CARGO_TARGET_DIR=$(TCH_TARGET) $(CARGO) build --release --features tch -p ntlb-cli

# Pack what scripts/gpu-check.sh needs into gpu/ (under the 64 MiB a device call carries).
gpu-pack:
	@mkdir -p gpu
	strip -o gpu/ntlb $(TCH_TARGET)/release/ntlb && xz -T2 -6 -f gpu/ntlb
	tar -C $(SHARED) -cJf gpu/golden.tar.xz golden/encode_text.json golden/encode_image.json \
	  golden/coop_middle.json golden/coop_end.json golden/tiny-clip/openai.safetensors golden/tiny-clip/hf/tokenizer.json
	@mkdir -p gpu/lib; LD_LIBRARY_PATH=$$($(TORCH_LIB_CMD)) ldd $(TCH_TARGET)/release/ntlb \
	  | grep -v -E "torch|nvidia|c10|vdso|ld-linux|libc.so|libm.so|libgcc_s|libstdc" | awk '{print $$3}' | grep "^/" | xargs -r -I{} cp -L {} gpu/lib/
	@ls -la gpu
