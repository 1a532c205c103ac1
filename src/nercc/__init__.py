"""nercc."""
