"""The small evaluation setting the CLI tests share (a module without W&B or Ray, so that the GPU
tests, run where those are absent, can import it)."""

SMALL = [
    "data=synthetic",
    "coding.num_inputs=8",
    "coding.num_workers=20",
    "stragglers=[0,5,10]",
    "eval.batch_size=64",
    "eval.num_patterns=2",
]
