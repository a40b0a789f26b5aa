"""Fine-tuning: optimiser parameter groups, schedules, training loop."""
