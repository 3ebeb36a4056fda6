"""Stage `generate`: prompts -> sharded, resumable traces (stage.py), with chunks, merge, status and the
Slurm array for runs across machines."""
