# ntlb — common jobs. Everything builds one profile (release).
CARGO ?= cargo
NTLB := target/release/ntlb
SHARED ?= ../shared
GOLDEN := $(SHARED)/golden
CASES := tokenize encode_text encode_image coop_middle coop_end

.PHONY: all build test parity bench bench-encode bench-train-step

all: parity

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

bench: bench-encode bench-train-step

# Images/s and texts/s; NTLB_PYTHON=path/to/python-with-torch adds the PyTorch CPU figure.
bench-encode: build
	$(NTLB) bench encode --presets ViT-B/32,RN50 --batches 1,32 --reps 3

# Seconds per prompt-learning step at ViT-B/32 size; --reference also times the original
# algorithm re-implemented in PyTorch (needs NTLB_PYTHON with torch + open_clip_torch).
bench-train-step: build
	$(NTLB) bench train-step --preset vit-b-32 --classes 10 --batch 4 --reps 2
	$(NTLB) bench train-step --preset vit-b-32 --classes 100 --batch 4 --reps 1

# The paper's comparison on ImageNet and its variants (datasets/README.md gives the layouts):
#   make eval-imagenet DATA=/data CHECKPOINTS=/ckpt [MODELS=ViT-B/32] [CONFIG=configs/imagenet-full.toml] [DEVICE=cuda]
CONFIG ?= configs/imagenet.toml
DATA ?= data
CHECKPOINTS ?= checkpoints
DEVICE ?= cpu
MODELS ?=
RESULTS ?= results/$(basename $(notdir $(CONFIG)))

.PHONY: eval-imagenet
eval-imagenet: build
	$(NTLB) sweep $(CONFIG) --data $(DATA) --checkpoints $(CHECKPOINTS) --device $(DEVICE) --results $(RESULTS) $(if $(MODELS),--models $(MODELS),)
	$(NTLB) report $(RESULTS)
