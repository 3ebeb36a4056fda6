"""Stage `grpo`: train the teacher with TRL's GRPOTrainer on verifiable rewards (stage.py prepares prompts,
trainer.py is the training process, rewards.py the reward functions)."""
