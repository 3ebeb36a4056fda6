"""Student training methods beyond SFT (student/trainer.py): on_policy (TRL DistillationTrainer) and kd (TRL
GKDTrainer without student sampling). Each is a thin trainer module run through distill/training.py."""
