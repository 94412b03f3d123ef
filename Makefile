# Two commands set everything up: `make demo` (the main job on the embedded sample data) and
# `make test` (the whole test suite). Both create or reuse the virtual environment in .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test install clean pretrained

install: $(VENV)/.installed

# torch is installed first and pinned: an unpinned torch pulled in by the project would fetch
# the newest CUDA build (several GB).
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PINS)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: install
	$(BIN)/fusionkit plugins
	$(BIN)/fusionkit train --student se_strip --teacher ae
	$(BIN)/fusionkit bench --json runs/bench.json --markdown runs/bench.md

# The shipped pretrained student's recipe (docs/pretrained.md), in two stages. 1: a K-agnostic se_strip
# trained on MEF-SSIM + tones on real brackets packed at the work size (meant for a GPU: about 7 minutes on
# an H200). 2: mef_opt's per-image weights on the same scenes (about 20 minutes on 2 CPU cores, resumable),
# distilled into that student (about 12 minutes on 2 cores), scored on the held-out scenes with the
# shadow fill, the prior's tilt and the per-image refinement it ships with, and shipped as the plugin's
# pretrained student.
PACKED ?= data/packed_real
TEACHER ?= data/distil_fine6
pretrained: install
	$(BIN)/python benchmarks/pack_real_brackets.py $(PACKED)
	$(BIN)/fusionkit train --stage student --student se_strip --student-option num_inputs=null \
		--student-option fine_levels=null --loss distill=0 --loss perceptual=0 --loss mef_ssim=1 --loss tones=0.3 \
		--data $(PACKED) --max-side 512 --crop 256 --batch-size 16 --student-steps 3000 --width 32 --workers 8 \
		--precision fp32 --run-dir runs/pretrained
	$(BIN)/python benchmarks/distil_mef_opt.py teach $(TEACHER) --teacher-option tone_weight=0.01 \
		--teacher-option shadow_weight=3000 --teacher-option fine_levels=6 --teacher-option edge_weight=0.15
	$(BIN)/python benchmarks/distil_mef_opt.py train $(TEACHER) runs/distilled --space weights \
		--init runs/pretrained/student --fine-levels 6 --lr 5e-4 --steps 800 --batch-size 4 --crop 192 \
		--eval-every 100 --shadow-emphasis 20
	$(BIN)/python benchmarks/distil_mef_opt.py score runs/distilled --student-option shadow_fill=true \
		--student-option prior_shift=-0.25 --student-option refine_steps=10
	$(BIN)/python benchmarks/distil_mef_opt.py ship runs/distilled

test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) runs
