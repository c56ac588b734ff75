"""Training shared by finetune and distill: strategies, schedules, the loop, resume, DDP."""
