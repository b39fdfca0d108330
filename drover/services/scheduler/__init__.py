"""SchedulerService: Nova FilterScheduler over the Rust scheduler_core."""
