"""Training: fitting a network (routes through cached or echoed backbone features), its callbacks and
interrupts, the optimizer's schedules and the distribution strategy."""
