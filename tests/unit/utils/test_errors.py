"""Every exception class the project defines pickles and unpickles with its message and type:
parallel launchers (joblib's loky, submitit) ship a failed job's exception back to the sweep,
and one that cannot be rebuilt breaks the whole pool (BrokenProcessPool) and loses the good jobs.

The classes are found by importing every module of the package, so a new exception class
without an example here fails the test until one is added."""

import importlib
import pickle
import pkgutil
import signal

import pytest

import nercc

# One instance of each class with an __init__ of its own, built as the project raises it (class
# name -> factory); a class that keeps its builtin base's __init__ is built from one message.
EXAMPLES = {
    "ConfigError": lambda cls: cls("eval.batch_size", "must be an integer >= K=20", "abc"),
    "JobFailed": lambda cls: cls("ValueError: bad", "/sweep/3"),
    "Interrupted": lambda cls: cls(signal.SIGTERM),
    "CheckpointError": lambda cls: cls("/x.ckpt", "not a checkpoint", "python -m nercc.train"),
}


def own_init(cls):
    """Whether a class of the project (or a project base of it) defines ``__init__``."""
    return any(
        "__init__" in vars(base) for base in cls.__mro__ if base.__module__.startswith("nercc")
    )


def project_exception_classes():
    """Every BaseException subclass defined in a module of nercc (private ones too)."""
    found = {}
    for module_info in pkgutil.walk_packages(nercc.__path__, prefix="nercc."):
        if module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
            ):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


CLASSES = project_exception_classes()


def test_the_walk_finds_the_known_classes():
    names = {cls.__name__ for cls in CLASSES.values()}
    assert {"ConfigError", "JobFailed", "Interrupted", "CheckpointError"} <= names


@pytest.mark.parametrize("path", sorted(CLASSES))
def test_every_project_exception_pickles(path):
    cls = CLASSES[path]
    if own_init(cls):
        assert cls.__name__ in EXAMPLES, f"add an example of {path} to EXAMPLES"
        error = EXAMPLES[cls.__name__](cls)
    else:
        error = cls("what went wrong, on one line")
    shipped = pickle.loads(pickle.dumps(error))
    assert type(shipped) is cls
    assert str(shipped) == str(error)
    assert vars(shipped) == vars(error)
