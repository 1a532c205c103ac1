"""The one validation pass of every entry point: each bad setting is refused with one line that
starts with its config key and shows the value it got; good configs pass.

The refusals are rows of the tables below (overrides -> key and what the line shows), boundaries
included: the first value refused is a row here, the last value accepted a row of GOOD."""

from __future__ import annotations

import pytest

from nercc.runtime import checks
from nercc.tasks.demo import check_config as check_demo_config
from nercc.tasks.evaluate import check_config
from nercc.tasks.train import check_config as check_train_config
from nercc.tasks.tune import check_config as check_tune_config

FILE = "{tmp}/a_file"  # a path below a plain file: no folder can be made there

EVAL_CASES = [
    (["eval.batch_size=abc"], "eval.batch_size", "'abc'"),
    (["eval.batch_size=10"], "eval.batch_size", "10"),
    (["eval.batch_size=64.5"], "eval.batch_size", "64.5"),
    (["eval.num_patterns=0"], "eval.num_patterns", "0"),
    (["eval.chunk_size=-1"], "eval.chunk_size", "-1"),
    (["eval.limit=0"], "eval.limit", "0"),
    (["eval.split=train"], "eval.split", "'train'"),
    (["eval.cache=maybe"], "eval.cache", "'maybe'"),
    (["seed=abc"], "seed", "'abc'"),
    (["seed=-1"], "seed", "-1"),
    (["stragglers=[10.5]"], "stragglers", "[10.5]"),
    (["stragglers=[]"], "stragglers", "[]"),
    (["stragglers=[-1]"], "stragglers", "[-1]"),
    (["stragglers=[100]"], "stragglers", "[100]"),
    (["stragglers=abc"], "stragglers", "'abc'"),
    (["coding.num_workers=10"], "coding.num_workers", "10"),
    (["coding.num_inputs=0"], "coding.num_inputs", "0"),
    (["coding.num_inputs=abc"], "coding.num_inputs", "'abc'"),
    (["scheme=all", "coding.num_workers=50", "stragglers=[0,10]"], "scheme.replication.replicas",
     "2"),
    (["scheme.nercc.lam_enc=abc"], "scheme.nercc.lam_enc", "'abc'"),
    (["scheme.nercc.lam_dec=-1"], "scheme.nercc.lam_dec", "-1"),
    (["scheme.nercc.lam_dec=[0,-1e-3]"], "scheme.nercc.lam_dec", "[0, -0.001]"),
    (["scheme.nercc.lam_enc=1e300"], "scheme.nercc", "1e+300"),
    (["scheme.nercc.points=random"], "scheme.nercc.points", "'random'"),
    (["scheme.nercc.lambdas=/nonexistent/table.json"], "scheme.nercc.lambdas", "nonexistent"),
    (["scheme.bacc.num_workers=120"], "scheme", "['nercc', 'bacc']"),
    (["straggler=bernoulli", "straggler.p=0.3"], "straggler.p", "0.3"),
    (["straggler=bernoulli", "straggler.p=1.5", "stragglers=[0]"], "straggler.p", "1.5"),
    (["straggler=latency", "straggler.rate=0"], "straggler.rate", "0"),
    (["straggler=latency", "straggler.distribution=normal"], "straggler.distribution",
     "'normal'"),
    (["straggler=latency", "+straggler.deadline=3"], "straggler.deadline", "3.0"),
    (["straggler=latency", "straggler.slow_fraction=1"], "straggler.slow_fraction", "got 1"),
    (["straggler=latency", "straggler.slow_factor=0.5"], "straggler.slow_factor", "got 0.5"),
    (["straggler=worst_case", "straggler.placement=middle"], "straggler.placement", "'middle'"),
    (["straggler=worst_case", "scheme.nercc.lam_dec=gcv"], "scheme.nercc.lam_dec", "'gcv'"),
    (["+straggler.p=0.3"], "straggler.p", "0.3"),
    (["straggler=latency", "+straggler.mean=3"], "straggler.mean", "3"),
    (["optimized_metric=coded/nercc/foo"], "optimized_metric", "'coded/nercc/foo'"),
    (["optimized_at=5"], "optimized_at", "5"),
    (["data.image_size=32"], "data.image_size", "32"),
    (["data.num_classes=100"], "data.num_classes", "100"),
    (["data=synthetic", "data.val_size=600"], "data.val_size", "600"),
    (["data=synthetic", "data.name=imagenet"], "data.name", "'imagenet'"),
    (["trainer.precision=15"], "trainer.precision", "15"),
    (["trainer.devices=0"], "trainer.devices", "0"),
    (["trainer.limit_test_batches=-1"], "trainer.limit_test_batches", "-1"),
    ([f"paths.output_dir={FILE}/run"], "paths.output_dir", "a_file/run"),
    (["logger=wandb", "logger.wandb.offline=false"], "logger.wandb.offline", "False"),
    (["eval.num_patterns=100000000", "stragglers=[0]"], "eval.num_patterns", "100000000"),
    (["coding.num_inputs=2000", "coding.num_workers=2000000", "eval.batch_size=2000",
      "stragglers=[0]"], "coding.num_workers", "2000000"),
    (["stragglers=[0,10,10]"], "stragglers", "[0, 10, 10]"),
    (["trainer.limit_test_batches=0.5"], "trainer.limit_test_batches", "0.5"),
    (["logger.csv.save_dir={tmp}/a_file/csv"], "logger.csv.save_dir", "a_file/csv"),
    # lam_dec=gcv and df_enc / df_dec (effective degrees of freedom)
    (["scheme.nercc.lam_enc=gcv"], "scheme.nercc.lam_enc", "gcv is a word of lam_dec"),
    (["scheme.nercc.lam_enc=[0,gcv]"], "scheme.nercc.lam_enc", "[0, 'gcv']"),
    (["scheme.nercc.lam_enc=[auto]"], "scheme.nercc.lam_enc", "['auto']"),
    (["scheme.nercc.lam_dec=GCV"], "scheme.nercc.lam_dec", "(or gcv: chosen per pattern"),
    (["scheme.nercc.df_enc=2"], "scheme.nercc.df_enc", "K interpolates), got 2"),
    (["scheme.nercc.df_enc=21"], "scheme.nercc.df_enc", "a number in (2, K=20] or a list"),
    (["scheme.nercc.df_enc=abc"], "scheme.nercc.df_enc", "'abc'"),
    (["scheme.nercc.df_dec=1.5"], "scheme.nercc.df_dec", "each pattern's answering workers"),
    (["scheme.nercc.df_dec=[10,2]"], "scheme.nercc.df_dec", "in (2, N=100] or a list"),
    (["scheme.nercc.df_dec=101"], "scheme.nercc.df_dec", "101"),
    (["scheme.nercc.df_dec=gcv"], "scheme.nercc.df_dec", "'gcv'"),
    (["scheme.nercc.df_enc=6", "scheme.nercc.lam_enc=1e-6"], "scheme.nercc.df_enc",
     "and lam_enc=1e-06 both give the encoder's setting lam_enc"),
    (["scheme.nercc.df_enc=6", "scheme.nercc.lam_enc=auto"], "scheme.nercc.df_enc",
     "lam_enc='auto' both"),
    (["scheme.nercc.df_dec=[10,20]", "scheme.nercc.lam_dec=gcv"], "scheme.nercc.df_dec",
     "and lam_dec='gcv' both give the decoder's setting lam_dec: set one of them, the other null "
     "(scheme.nercc.lam_dec=null), got [10, 20]"),
    # a scheme's parameters are checked as its class declares them (nercc.coding.Tunable)
    (["scheme=floater_hormann", "scheme.fh.d=-1"], "scheme.fh.d",
     "must be null, an integer >= 0 or a list of them (or auto: calibrated"),
    (["scheme=floater_hormann", "scheme.fh.d=1.5"], "scheme.fh.d", "got 1.5"),
    (["scheme=floater_hormann", "scheme.fh.d=[0,gcv]"], "scheme.fh.d", "[0, 'gcv']"),
    (["scheme=floater_hormann", "+scheme.fh.df_enc=6"], "scheme.fh.df_enc",
     "is not a parameter of FloaterHormann (its parameters: num_inputs, num_workers, points, d)"),
    # boundaries: the first value refused (the last accepted is a row of GOOD)
    (["coding.num_inputs=20", "coding.num_workers=19", "stragglers=[0]"], "coding.num_workers",
     "coding.num_inputs K=20, got 19"),
    (["coding.num_inputs=2", "coding.num_workers=1", "eval.batch_size=2", "stragglers=[0]"],
     "coding.num_workers", "K=2, got 1"),
    (["coding.num_workers=30", "stragglers=[0,30]"], "stragglers", "N - 1 = 29, got [0, 30]"),
    (["eval.batch_size=19"], "eval.batch_size", "K=20, got 19"),
    (["scheme.nercc.df_enc=20.001"], "scheme.nercc.df_enc", "20.001"),
    (["scheme.nercc.df_dec=100.001"], "scheme.nercc.df_dec", "100.001"),
    (["scheme.nercc.df_dec=2"], "scheme.nercc.df_dec", "got 2"),
    (["scheme=all", "coding.num_workers=60", "scheme.replication.replicas=2",
      "stragglers=[0,10]"], "scheme.replication.replicas", "got 2"),
    # straggler models: their settings as their classes declare them
    (["straggler=bernoulli", "straggler.p=0.3"], "straggler.p",
     "a fixed probability ignores S, so the rows of stragglers=[0, 10, 20, 30, 40, 50, 60, 70, "
     "80] would be the same "
     "run under different labels; give one S or straggler.p=null (p = S / N, S stragglers in "
     "expectation), got 0.3"),
    (["straggler=latency", "+straggler.deadline=3", "stragglers=[0,5]"], "straggler.deadline",
     "a deadline ignores S, so the rows of stragglers=[0, 5] would be the same run under "
     "different labels; give one S (a label) or no deadline, got 3.0"),
    (["straggler=latency", "+straggler.deadline=0", "stragglers=[5]"], "straggler.deadline",
     "must be null or a finite number > 0, got 0"),
    (["straggler=latency", "straggler.shape=-1"], "straggler.shape", "got -1"),
    (["straggler=latency", "straggler.shift=-1"], "straggler.shift", "got -1"),
    (["straggler=bernoulli", "+straggler.deadline=3"], "straggler.deadline",
     "is not a setting of BernoulliStragglers (its settings: p; the S list gives "
     "num_stragglers), got 3"),
    (["+straggler.placement=random"], "straggler.placement",
     "is not a setting of FixedStragglers (it has none; the S list gives num_stragglers)"),
    (["straggler=worst_case", "~straggler.placement", "scheme.nercc.lam_dec=[0,gcv]"],
     "scheme.nercc.lam_dec", "no decoder matrix for the adversarial placement"),
]  # fmt: skip

TRAIN_CASES = [
    (["model.optimizer.lr=abc"], "model.optimizer.lr", "'abc'"),
    (["model.optimizer.lr=0"], "model.optimizer.lr", "0"),
    (["model.optimizer.weight_decay=-1"], "model.optimizer.weight_decay", "-1"),
    (["model.label_smoothing=1.5"], "model.label_smoothing", "1.5"),
    (["data.batch_size=0"], "data.batch_size", "0"),
    (["data.batch_size=abc"], "data.batch_size", "'abc'"),
    (["trainer.max_epochs=abc"], "trainer.max_epochs", "'abc'"),
    (["trainer.max_epochs=-2"], "trainer.max_epochs", "-2"),
    (["publish=maybe"], "publish", "'maybe'"),
    (["publish=1"], "publish", "1"),
    (["model=vit", "model.net.patch_size=5"], "model.net.patch_size", "5"),
    (["model=vit", "model.net.num_heads=3"], "model.net.num_heads", "3"),
    (["model.net.num_classes=5"], "model.net.num_classes", "5"),
    (["model.net.in_channels=3"], "model.net.in_channels", "3"),
    (["data=synthetic", "data.image_size=4"], "model", "image_size must be at least 12"),
    ([f"paths.checkpoint_dir={FILE}/ckpt"], "paths.checkpoint_dir", "a_file/ckpt"),
    (["data.shift=40"], "data.shift", "40"),
    (["seed=1.5"], "seed", "1.5"),
    (["trainer.limit_train_batches=-1"], "trainer.limit_train_batches", "-1"),
    # datasets: the format each declares (nercc.data.sources.FORMATS)
    (["data=cifar10", "data.channels=1"], "data.channels",
     "must be 3: cifar10 has 3 channel(s), got 1"),
    (["data=cifar100", "data.num_classes=10"], "data.num_classes",
     "must be 100: cifar100 has 100 classes, got 10"),
    (["data=mnist", "data.image_size=32"], "data.image_size",
     "must be 28: mnist has 28x28 images, got 32"),
    (["data=synthetic", "data.val_size=512"], "data.val_size",
     "must be below data.synthetic.num_train=512, got 512"),
]  # fmt: skip

TUNE_CASES = [
    (["tune.split=test"], "tune.split", "'test'"),
    (["tune.objective=acc"], "tune.objective", "'acc'"),
    (["tune.search=random"], "tune.search", "'random'"),
    (["tune.grid={lam_enc:abc}"], "tune.grid.lam_enc", "'abc'"),
    (["+tune.grid.foo=[1]"], "tune.grid.foo", "'foo'"),
    (["tune.refine=-1"], "tune.refine", "-1"),
    (["tune.search=optuna", "tune.optuna.ranges={lam_enc:[1,0]}"], "tune.optuna.ranges.lam_enc",
     "[1, 0]"),
    (["tune.search=optuna", "tune.optuna.n_trials=0"], "tune.optuna.n_trials", "0"),
    (["tune.scheme=bacc"], "tune.baseline", "'bacc'"),
    (["tune.limit=0"], "tune.limit", "0"),
    (["tune.publish=maybe"], "tune.publish", "'maybe'"),
    (["tune.grid={lam_enc:[0,1e300]}"], "tune.grid.lam_enc", "1e+300"),
    (["tune.search=optuna", "tune.optuna.ranges={lam_enc:[1e-12,1e300]}"],
     "tune.optuna.ranges.lam_enc", "1e+300"),
    ([f"paths.lambdas_dir={FILE}/lambdas"], "paths.lambdas_dir", "a_file/lambdas"),
]  # fmt: skip

DEMO_CASES = [
    (["trials=0"], "trials", "0"),
    (["trials=abc"], "trials", "'abc'"),
    (["coding.num_workers=5"], "coding.num_workers", "5"),
    (["stragglers=[100]"], "stragglers", "[100]"),
    (["stragglers=[2.5]"], "stragglers", "[2.5]"),
    (["nercc_lams=[[1]]"], "nercc_lams", "[[1]]"),
    (["nercc_lams=[[0,-1]]"], "nercc_lams", "[[0, -1]]"),
    (["coding.points=random"], "coding.points", "'random'"),
    (["features=0"], "features", "0"),
    (["nercc_lams=[]"], "nercc_lams", "[]"),
    (["nercc_lams=[[1e300,0]]"], "nercc_lams", "1e+300"),
    (["coding.num_inputs=6", "coding.num_workers=5"], "coding.num_workers", "got 5"),
    (["coding.num_inputs=6", "coding.num_workers=6", "stragglers=[6]"], "stragglers",
     "coding.num_workers - 1 = 5, got [6]"),
]  # fmt: skip

SMALL_SERVE = ["coding.num_inputs=4", "coding.num_workers=4", "serving.scheme=bacc"]
SERVE_CASES = [
    ([*SMALL_SERVE, "serving.num_stragglers=4"], "serving.num_stragglers", "got 4"),
    (["coding.num_inputs=4", "coding.num_workers=3"], "coding.num_workers", "got 3"),
    (["serving.scheme=lt"], "serving.scheme", "'lt'"),
    (["scheme.nercc.lam_enc=[0,1]"], "scheme.nercc.lam_enc", "a list is a grid"),
    (["scheme.nercc.lam_dec=gcv"], "scheme.nercc.lam_dec", "gcv is not served"),
    (["serving.worker_cpus=100", "serving.num_cpus=2"], "serving.worker_cpus", "got 100.0"),
    (["serving.address=auto", "serving.num_cpus=2"], "serving.num_cpus", "got 2"),
    (["serving.address=nowhere"], "serving.address", "'nowhere'"),
    (["serving.port=0"], "serving.port", "got 0"),
    # the delay model: its settings as DelayModel declares them
    (["delay.shape=0"], "delay.shape", "must be a finite number > 0, got 0"),
    (["delay=slow_workers", "delay.slow_fraction=1"], "delay.slow_fraction", "got 1"),
    (["delay=shifted_exponential", "delay.distribution=normal"], "delay.distribution",
     "'normal'"),
    (["+delay.mean=3"], "delay.mean",
     "is not a setting of DelayModel (its settings: distribution, shift, rate, scale, shape, "
     "slow_fraction, slow_factor, slow_probability), got 3"),
    (["delay=rare_slow", "delay.slow_probability=1.5"], "delay.slow_probability",
     "must be a finite number in [0, 1), got 1.5"),
]  # fmt: skip

LOADTEST_CASES = [
    (["loadtest.schemes=[nercc,lt]"], "loadtest.schemes", "['nercc', 'lt']"),
    (["loadtest.schemes=[nercc,nercc]"], "loadtest.schemes", "must not repeat"),
    (["loadtest.target=http", "serving.host=0.0.0.0"], "serving.host", "'0.0.0.0'"),
    (["data=synthetic", "loadtest.num_queries=257"], "loadtest.num_queries",
     "the test split of synthetic has 256 images, got 257"),
    (["loadtest.split=val", "loadtest.num_queries=5001"], "loadtest.num_queries", "got 5001"),
    (["loadtest.rate=0"], "loadtest.rate", "got 0"),
]  # fmt: skip


def _published(cfg) -> None:
    """An (empty) published file where the config looks for its classifier: only its presence
    is checked before the work starts (its content when it is loaded)."""
    from pathlib import Path

    folder = Path(cfg.paths.checkpoint_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{cfg.model_name}_{cfg.data.name}.ckpt").touch()


def _overrides(overrides: list[str], tmp_path) -> list[str]:
    (tmp_path / "a_file").write_text("not a folder")
    return [o.replace("{tmp}", str(tmp_path)) for o in overrides]


def _assert_names(error: pytest.ExceptionInfo, key: str, got: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{key}: "), message
    assert got in message, message  # the value it got (or the file it names)


@pytest.fixture
def no_wandb_key(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


@pytest.mark.parametrize(("overrides", "key", "got"), EVAL_CASES)
def test_eval_refuses(compose_config, tmp_path, no_wandb_key, overrides, key, got):
    cfg = compose_config("eval", _overrides(overrides, tmp_path))
    if not str(cfg.paths.checkpoint_dir).startswith(str(tmp_path / "a_file")):
        _published(cfg)
    with pytest.raises(ValueError) as error:
        check_config(cfg)
    _assert_names(error, key, got)


@pytest.mark.parametrize(("overrides", "key", "got"), TRAIN_CASES)
def test_train_refuses(compose_config, tmp_path, overrides, key, got):
    cfg = compose_config("train", _overrides(overrides, tmp_path))
    with pytest.raises(ValueError) as error:
        check_train_config(cfg)
    _assert_names(error, key, got)


@pytest.mark.parametrize(("overrides", "key", "got"), TUNE_CASES)
def test_tune_refuses(compose_config, tmp_path, overrides, key, got):
    cfg = compose_config("tune", ["experiment=paper/lenet5", *_overrides(overrides, tmp_path)])
    with pytest.raises(ValueError) as error:
        check_tune_config(cfg)
    _assert_names(error, key, got)


def _demo_config(overrides: list[str], tmp_path):
    """The demo's config with Hydra's runtime set (its output folder under ``tmp_path``)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from nercc.paths import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("demo", overrides, return_hydra_config=True)
    cfg.hydra.runtime.output_dir = str(tmp_path / "run")
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.mark.parametrize(("overrides", "key", "got"), DEMO_CASES)
def test_demo_refuses(tmp_path, overrides, key, got):
    with pytest.raises(ValueError) as error:
        check_demo_config(_demo_config(overrides, tmp_path))
    _assert_names(error, key, got)


@pytest.mark.parametrize(("overrides", "key", "got"), SERVE_CASES)
def test_serve_refuses(compose_config, no_wandb_key, overrides, key, got):
    with pytest.raises(ValueError) as error:
        checks.check_serve(compose_config("serve", overrides))
    _assert_names(error, key, got)


@pytest.mark.parametrize(("overrides", "key", "got"), LOADTEST_CASES)
def test_loadtest_refuses(compose_config, no_wandb_key, overrides, key, got):
    with pytest.raises(ValueError) as error:
        checks.check_loadtest(compose_config("loadtest", overrides))
    _assert_names(error, key, got)


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("eval", []),
        (
            "eval",
            ["trainer.devices='0,1'", "trainer.precision=null", "trainer.limit_test_batches=1.0"],
        ),
        (
            "eval",
            [
                "+scheme.uncoded._target_=nercc.coding.Uncoded",
                "+scheme.uncoded.num_inputs=20",
                "stragglers=[0,10]",
            ],
        ),
        ("eval", ["data=synthetic", "stragglers=[10]", "eval.num_patterns=3000"]),
        ("eval", ["experiment=paper/repvgg", "scheme=all"]),
        ("eval", ["experiment=paper/vit", "straggler=worst_case"]),
        ("eval", ["straggler=bernoulli"]),
        ("eval", ["straggler=bernoulli", "straggler.p=0.2", "stragglers=[20]"]),
        ("eval", ["straggler=latency", "+straggler.deadline=2.5", "stragglers=[0]"]),
        ("eval", ["scheme.nercc.lam_dec=[0,1e-6]", "logger=wandb"]),
        ("eval", ["scheme.nercc.lam_dec=gcv"]),
        ("eval", ["scheme.nercc.lam_dec=[0,1e-6,gcv]", "scheme.nercc.lam_enc=auto"]),
        ("eval", ["scheme.nercc.lam_enc=auto", "scheme.nercc.lam_dec=auto"]),
        ("eval", ["scheme.nercc.lam_enc=0", "scheme.nercc.lam_dec=auto"]),
        ("eval", ["scheme.nercc.df_enc=20", "scheme.nercc.df_dec=[2.5,30,100]"]),
        ("eval", ["scheme.nercc.df_enc=[10,15]", "scheme.nercc.lam_dec=gcv", "scheme=all"]),
        # a cache that cannot be written turns itself off in the run: never a refusal
        ("eval", ["paths.cache_dir=/proc/nercc-cache"]),
        # boundaries: the last value accepted (the first refused is a row of EVAL_CASES)
        ("eval", ["coding.num_inputs=20", "coding.num_workers=20", "stragglers=[0]"]),
        ("eval", ["coding.num_workers=30", "stragglers=[0,29]"]),
        ("eval", ["eval.batch_size=20"]),
        ("eval", ["scheme.nercc.df_enc=20", "scheme.nercc.df_dec=100"]),
        ("eval", ["scheme.nercc.df_enc=2.001", "scheme.nercc.df_dec=2.001"]),
        ("eval", ["scheme=all", "coding.num_workers=60", "stragglers=[0,10]"]),
        ("eval", ["straggler=latency", "straggler.slow_fraction=0.99", "straggler.shift=0"]),
        ("eval", ["straggler=worst_case", "straggler.placement=random",
                  "scheme.nercc.lam_dec=gcv"]),
        ("eval", ["data=cifar10", "model=repvgg"]),
        ("train", []),
        (
            "train",
            [
                "trainer.max_epochs=null",
                "trainer.log_every_n_steps=null",
                "trainer.devices='1'",
                "trainer.enable_progress_bar=null",
                "publish=false",
            ],
        ),
        ("train", ["experiment=vit_fashion_mnist"]),
        ("train", ["data=synthetic", "publish=force", "trainer.max_epochs=0"]),
        ("tune", ["experiment=paper/vit"]),
        ("tune", ["tune.search=optuna"]),
        ("demo", []),
        ("demo", ["coding.num_inputs=6", "coding.num_workers=6", "stragglers=[0,5]"]),
        ("serve", [*SMALL_SERVE, "serving.num_stragglers=3"]),
        ("serve", ["delay=none", "serving.scheme=nercc", "serving.deadline_ms=5"]),
        ("serve", ["delay=slow_workers", "serving.scheme=replication"]),
        ("serve", ["delay=rare_slow", "serving.scheme=nercc"]),
        ("loadtest", []),
        ("loadtest", ["data=synthetic", "loadtest.num_queries=256", "delay=shifted_exponential"]),
    ],
)  # fmt: skip
def test_good_configs_pass(compose_config, tmp_path, no_wandb_key, name, overrides):
    if name == "demo":
        check_demo_config(_demo_config(overrides, tmp_path))
        return
    cfg = compose_config(name, overrides)
    if name in ("eval", "tune"):
        _published(cfg)
    if name == "eval":
        check_config(cfg)
    elif name == "tune":
        check_tune_config(cfg)
    elif name == "serve":
        checks.check_serve(cfg)
    elif name == "loadtest":
        checks.check_loadtest(cfg)
    else:
        check_train_config(cfg)


def test_wandb_online_passes_with_a_key(compose_config, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    cfg = compose_config("eval", ["logger=wandb", "logger.wandb.offline=false"])
    checks.check_loggers(cfg)


def test_batches_against_processes(compose_config):
    cfg = compose_config("eval", ["trainer=ddp_cpu", "eval.batch_size=1000", "eval.limit=1500"])
    checks.check_batches(cfg, 10_000, 2)  # two batches, two processes
    with pytest.raises(ValueError, match=r"^eval\.batch_size: 900 images make 1 batch") as error:
        checks.check_batches(cfg, 900, 2)
    assert "eval.batch_size <= 450" in str(error.value)


def test_gpu_trainer_without_gpu(compose_config):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    cfg = compose_config("eval", ["trainer=gpu"])
    with pytest.raises(ValueError, match=r"^trainer\.accelerator: no CUDA GPU"):
        checks.check_hardware(cfg)
    assert checks.check_hardware(compose_config("eval", ["trainer=ddp_cpu"])) == 2


def test_model_that_cannot_take_the_images(compose_config):
    from nercc.utils.instantiate import build

    # a network built for another channel count (check_train refuses the config itself)
    cfg = compose_config("train", ["data=synthetic", "model.net.in_channels=3"])
    with pytest.raises(ValueError, match=r"^model\.net\.in_channels: must equal data\.channels"):
        checks.check_train(cfg)
    with pytest.raises(ValueError, match=r"^model\.net: cannot take data images of shape"):
        checks.check_model_input(build(cfg.model), cfg)
    good = compose_config("train", ["data=synthetic"])
    checks.check_model_input(build(good.model), good)


def test_memory_estimate_counts_the_big_terms():
    small = checks.coded_memory_bytes(20, 100, 1000, 1, 784, 10)
    # 50 groups x 100 workers x 784 pixels in float32 (15.7 MB) and the decoders (4 MB)
    assert 15.6e6 < small < 25e6
    doubled = checks.coded_memory_bytes(20, 200, 1000, 1, 784, 10)
    assert 1.9 < doubled / small < 2.1  # linear in N
    many = checks.coded_memory_bytes(20, 100, 1000, 1000, 784, 10)
    assert many > 12 * 50_000 * 20 * 100  # the decoders of 50 x 1000 patterns (float64 + float32)


def test_a_missing_classifier_is_found_before_the_data(compose_config):
    cfg = compose_config("eval", ["model=vit"])
    with pytest.raises(ValueError, match=r"^model: no trained vit for fashion_mnist at .*"):
        checks.check_checkpoint_exists(cfg)
    _published(cfg)
    assert checks.check_checkpoint_exists(cfg).name == "vit_fashion_mnist.ckpt"


def _eval_check(compose_config, overrides):
    cfg = compose_config("eval", overrides)
    _published(cfg)
    checks.check_eval(cfg)
    return cfg


# -- the memory estimate ---------------------------------------------------------------------------
def test_the_memory_estimate_grows_with_the_encoders_and_the_decoders():
    args = (20, 100, 1000, 10, 784, 10)
    one = checks.coded_memory_terms(*args)
    three = checks.coded_memory_terms(*args, encoders=3)
    assert sum(three.values()) > sum(one.values())
    # each encoder codes the batch of its own and runs the classifier on it
    assert three["eval.batch_size"] == 3 * one["eval.batch_size"]
    assert three["eval.num_patterns"] > one["eval.num_patterns"]
    assert three["coding.num_workers"] == one["coding.num_workers"]  # the matrix is built once
    two_decoders = checks.coded_memory_terms(*args, decoders=2)
    assert two_decoders["eval.num_patterns"] > one["eval.num_patterns"]
    assert checks.coded_memory_bytes(*args, encoders=3) == sum(three.values())


@pytest.fixture
def memory(monkeypatch):
    """Record the estimate check_eval makes, and set the memory it sees as available."""
    seen: list[int] = []
    real = checks.coded_memory_terms

    def recording(*args, **kwargs):
        terms = real(*args, **kwargs)
        seen.append(sum(terms.values()))
        return terms

    state = {"available": 2**62}
    monkeypatch.setattr(checks.evaluation, "coded_memory_terms", recording)
    monkeypatch.setattr(checks.evaluation, "available_memory_bytes", lambda: state["available"])
    return seen, state


def test_the_memory_check_counts_every_encoder(compose_config, no_wandb_key, memory):
    """Three lam_enc values mean three encoders, three coded batches and three classifier passes
    held at once: refused where one encoder fits."""
    seen, state = memory
    one = ["stragglers=[0]", "scheme.nercc.lam_enc=0", "scheme.nercc.lam_dec=0"]
    three = ["stragglers=[0]", "scheme.nercc.lam_enc=[0,1e-6,1e-4]", "scheme.nercc.lam_dec=0"]
    _eval_check(compose_config, one)
    _eval_check(compose_config, three)
    need_one, need_three = seen
    assert need_three > need_one
    state["available"] = need_one  # exactly enough for one encoder: accepted (the boundary)
    _eval_check(compose_config, one)
    with pytest.raises(ValueError) as error:
        _eval_check(compose_config, three)
    message = str(error.value)
    assert "\n" not in message and "GiB" in message and "more than the" in message
    assert message.split(":")[0] in ("eval.batch_size", "eval.num_patterns", "coding.num_workers")
    state["available"] = need_one - 1  # one byte short: refused even with one encoder
    with pytest.raises(ValueError, match="more than the"):
        _eval_check(compose_config, one)
    # df_enc lists count as encoders too
    seen.clear()
    state["available"] = 2**62
    _eval_check(compose_config, ["stragglers=[0]", "scheme.nercc.df_enc=[5,10,15]"])
    assert seen == [need_three]


def test_unknown_memory_skips_the_check(compose_config, no_wandb_key, monkeypatch):
    monkeypatch.setattr(checks.evaluation, "available_memory_bytes", lambda: None)
    _eval_check(compose_config, ["eval.num_patterns=100000000", "stragglers=[0]"])
